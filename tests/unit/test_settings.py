"""Settings come from the environment; with none, the embedded defaults need no server."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT_SETTINGS = (
    "import json; from django.conf import settings as s; "
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], 'name': str(s.DATABASES['default']['NAME']), "
    "'broker': s.CELERY_BROKER_URL, 'cache': s.CACHES['default']['BACKEND'], 'debug': s.DEBUG}))"
)


def load_settings(tmp_path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG")}
    return subprocess.run(
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, capture_output=True, text=True,
        env=base | {"DJANGO_SETTINGS_MODULE": "controlplane.settings", "CUTOVER_VAR_DIR": str(tmp_path)} | env,
    )


def test_settings__nothing_configured_but_debug__sqlite_under_var_and_embedded_broker_and_cache(tmp_path):
    result = load_settings(tmp_path, DEBUG="1")
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["db"] == "django.db.backends.sqlite3" and loaded["name"].startswith(str(tmp_path))
    assert loaded["broker"] == "cutoverfs://"
    assert loaded["cache"].endswith("FileBasedCache")


def test_settings__database_and_redis_urls__postgres_and_redis_everywhere(tmp_path):
    result = load_settings(tmp_path, DEBUG="1", DATABASE_URL="postgres://u@db:5432/cutover",
                           REDIS_URL="redis://cache:6379/0")
    loaded = json.loads(result.stdout)
    assert loaded["db"] == "django.db.backends.postgresql" and loaded["name"] == "cutover"
    assert loaded["broker"] == "redis://cache:6379/0" and loaded["cache"].endswith("RedisCache")


def test_settings__debug_off_without_secret_key__refuses_to_start(tmp_path):
    result = load_settings(tmp_path)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def test_settings__debug_unset__off(tmp_path):
    assert json.loads(load_settings(tmp_path, SECRET_KEY="x" * 50).stdout)["debug"] is False
