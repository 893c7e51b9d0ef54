"""Real Celery worker and beat processes for tests, on the test database and the configured broker."""

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _test_database_url() -> str:
    """The URL of the database this test run uses (pytest-django's test database, not the configured one)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def celery_env(**extra: str) -> dict[str, str]:
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": _test_database_url()}
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    return env | extra


def start_celery(*args: str, log: Path, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controlplane", *args, "--loglevel=INFO"],
        cwd=ROOT, env=celery_env(**extra_env), stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def worker_and_beat(tmp_path: Path, **extra_env: str) -> Iterator[tuple[subprocess.Popen, subprocess.Popen]]:
    """A solo-pool worker and a beat scheduler, stopped on exit; their logs are in tmp_path."""
    worker = start_celery("worker", "--pool=solo", "--concurrency=1", log=tmp_path / "worker.log", **extra_env)
    beat = start_celery("beat", "--schedule", str(tmp_path / "beat-schedule"), log=tmp_path / "beat.log",
                        **extra_env)
    try:
        yield worker, beat
    finally:
        stop(beat)
        stop(worker)


def log_tail(tmp_path: Path, name: str = "worker.log", chars: int = 4000) -> str:
    path = tmp_path / name
    return path.read_text()[-chars:] if path.exists() else ""
