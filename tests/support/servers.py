"""Real server processes for fault tests: a private Redis a test may restart, and the control plane under
granian, each on a free loopback port, stopped by the test that started it (never a shared instance)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import httpx

from tests.support.processes import ROOT, celery_env, stop


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class PrivateRedis:
    """`redis-server` on a free port with no persistence: a restart loses everything, as a crash would."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.log = log
        self.process: subprocess.Popen | None = None
        self.executable = shutil.which("redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Self:
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ControlPlane:
    """The control plane under granian, as in production (blocking threads, so long-polls do not starve
    other requests)."""

    def __init__(self, log: Path, *, database_url: str | None = None, redis_url: str | None = None,
                 port: int | None = None, **extra_env: str) -> None:
        """`redis_url`: None for the test run's own (none on the embedded defaults)."""
        self.port = port or free_port()
        self.log = log
        env = celery_env(ALLOWED_HOSTS="127.0.0.1,localhost", **extra_env)
        if redis_url is not None:
            env["REDIS_URL"] = redis_url
        if database_url:
            env["DATABASE_URL"] = database_url
        # Keep no database connection open between requests, so a cut proxy is seen on the very next one.
        env.setdefault("CONN_MAX_AGE", "0")
        self.env = env
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Self:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "granian", "--interface", "wsgi", "controlplane.wsgi:application",
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1", "--blocking-threads", "16",
             "--no-ws", "--workers-kill-timeout", "2"],
            cwd=ROOT, env=self.env, stdout=self.log.open("a"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the control plane did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def wait_until(predicate, timeout: float, what: str = "condition", interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true within {timeout} s")
        time.sleep(interval)
