"""Settings read from the environment (twelve-factor).

With no DATABASE_URL and no REDIS_URL the control plane runs on embedded defaults: a SQLite file under
var/, a file-system Celery broker and a file-system cache, so a laptop with only Python can run it all.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Relative to the working directory, not to this file: after `pip install .` this file lives in
# site-packages, which is no place for a database.
VAR_DIR = Path(env.str("CUTOVER_VAR_DIR", default="var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (set DEBUG=1 for development).")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if not DEBUG else ["*"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "migrations_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's and the API docs' static files in production, with no proxy needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Content-Security-Policy on HTML pages (the admin, the dashboard): controlplane.security.
    "controlplane.security.ContentSecurityPolicyMiddleware",
    # A database outage is a 503 with Retry-After, not a 500 (DRF views: api.errors.exception_handler).
    "migrations_app.api.errors.DatabaseUnavailableMiddleware",
    # A NUL character in an API path or query is a 404 or 400, not a database error: api.errors.
    "migrations_app.api.errors.RefuseNulCharactersMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------------------
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'cutover.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, for the test database too: worker processes started by tests must see it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, broker, config-change pub/sub (all optional) --------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # Django's Redis backend, reusing its redis-py client (controlplane/cache.py: less CPU per cache call).
    CACHES = {"default": {"BACKEND": "controlplane.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    # A file cache, not local memory: the web server, the worker and beat are separate processes and
    # must see one SDK config cache.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
            "OPTIONS": {"MAX_ENTRIES": 10000},
        }
    }

# --- Celery -----------------------------------------------------------------------------------------
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
else:
    _broker_dir = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    # controlplane.broker: kombu's file-system transport with atomic writes.
    CELERY_BROKER_URL = "cutoverfs://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
CELERY_TASK_ACKS_LATE = True
# The checks that guard live traffic run on their own queue, consumed first, so a backlog of shadow or
# evaluation work can never delay a rollback.
CELERY_TASK_QUEUES = {"control": {}, "celery": {}}
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = {
    "migrations_app.tasks.health_tick": {"queue": "control"},
    "migrations_app.tasks.rollout_tick": {"queue": "control"},
    "migrations_app.tasks.scheduler_heartbeat": {"queue": "control"},
    "migrations_app.tasks.notification_send": {"queue": "control"},
}
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CUTOVER_HEARTBEAT_SECONDS = env.float("CUTOVER_HEARTBEAT_SECONDS", default=30.0)

# --- auth and API -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Staff users with a role (migrations_app.roles): viewers read, operators act, admins manage keys.
    "DEFAULT_PERMISSION_CLASSES": ["migrations_app.api.permissions.HasStaffRole"],
    # JSON bodies (a dataset import also takes a multipart upload): migrations_app/api/parsers.py.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "migrations_app.api.schema.CutoverAutoSchema",
    "EXCEPTION_HANDLER": "migrations_app.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "migrations_app.api.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": None,
}
REST_KNOX = {"TOKEN_TTL": None, "AUTH_HEADER_PREFIX": "Token"}

SPECTACULAR_SETTINGS = {
    "TITLE": "Cutover API",
    "DESCRIPTION": "Plan, steer and observe LLM traffic migrations; the SDK-side config, events and shadow API.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from drf-spectacular-sidecar: the docs load where there is no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"PlanStateEnum": "migrations_app.models.STATE_CHOICES"},
}

# --- security (docs/security.md) ----------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# An admin session lasts a working day, not Django's two weeks.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Sent on every HTML page but the Swagger UI (its page starts itself with an inline script). The admin and
# the plan dashboard load scripts from this origin only; styles may be inline (the admin's templates use
# style attributes).
CUTOVER_CONTENT_SECURITY_POLICY = env.str("CUTOVER_CONTENT_SECURITY_POLICY", default=(
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"))
CUTOVER_CONTENT_SECURITY_POLICY_EXEMPT = ["/api/docs/"]
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- i18n, static -----------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"redact_url_paths": {"()": "controlplane.logging_filters.RedactURLPaths"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# --- Cutover ----------------------------------------------------------------------------------------
# Requests per SDK key per endpoint scope (N/s, N/min, N/hour; 0 = unlimited); over it: 429 with Retry-After.
# E.g. CUTOVER_SDK_RATE_LIMITS="config=1200/min,events=600/min".
CUTOVER_SDK_RATE_LIMITS = {"config": "1200/min", "events": "600/min", "feedback": "600/min", "shadow": "600/min"} | \
    env.dict("CUTOVER_SDK_RATE_LIMITS", default={})
# Longest long-poll a client may ask for on GET /api/v1/sdk/config?wait=S.
CUTOVER_CONFIG_MAX_WAIT_SECONDS = 60
# How long a cached SDK config document or SDK key lives without a change (a safety net: every write
# refreshes the cache on commit).
CUTOVER_CONFIG_CACHE_SECONDS = env.int("CUTOVER_CONFIG_CACHE_SECONDS", default=300)
# "Unchanged" config polls answered 304 ahead of the middleware and DRF (migrations_app/api/config_poll.py);
# off, Django answers every poll (same answers, more CPU).
CUTOVER_CONFIG_FAST_PATH = env.bool("CUTOVER_CONFIG_FAST_PATH", default=True)
# Raw per-request events and feedback are pruned after this many days; per-minute rollups stay.
CUTOVER_EVENT_RETENTION_DAYS = env.int("CUTOVER_EVENT_RETENTION_DAYS", default=14)
# How often the health checker judges every live plan, and how long a fired rule must stay clear before
# its alert resolves (at least; a rule's own sustained-for window counts too).
CUTOVER_HEALTH_TICK_SECONDS = env.float("CUTOVER_HEALTH_TICK_SECONDS", default=5.0)
CUTOVER_ALERT_MIN_CLEAR_SECONDS = env.int("CUTOVER_ALERT_MIN_CLEAR_SECONDS", default=60)
# Steps watched "normally" (above 25 % by default) are checked at this interval rather than every tick.
CUTOVER_HEALTH_NORMAL_INTERVAL_SECONDS = env.float("CUTOVER_HEALTH_NORMAL_INTERVAL_SECONDS", default=30.0)
# How often the rollout scheduler decides every running plan's next move.
CUTOVER_ROLLOUT_TICK_SECONDS = env.float("CUTOVER_ROLLOUT_TICK_SECONDS", default=10.0)

# --- email (alert notifications) ---------------------------------------------------------------------
# EMAIL_URL like smtp+tls://user:password@smtp.example.com:587 (see django-environ); the default prints
# messages to the console.
globals().update({name: value for name, value in env.email_url("EMAIL_URL", default="consolemail://").items()
                  if value is not None})
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="cutover@localhost")
CUTOVER_ALERT_FROM_EMAIL = env.str("CUTOVER_ALERT_FROM_EMAIL", default=DEFAULT_FROM_EMAIL)
# Where people reach this control plane (e.g. https://cutover.example.com): alert notifications link to
# the plan's page there. Empty: no links.
CUTOVER_PUBLIC_URL = env.str("CUTOVER_PUBLIC_URL", default="")
# httpx logs every request's full URL at INFO, and a Slack webhook's URL is its credential: quiet, and should
# anyone turn it up, the URL's path and query are cut from the line.
LOGGING["loggers"] = {"httpx": {"level": "WARNING", "filters": ["redact_url_paths"]},
                      "httpcore": {"level": "WARNING"}}

# --- evaluation runs and shadow comparisons (docs/evaluation-and-shadow.md) ---------------------------
# Calls Cutover makes itself (never user-facing) are rate-limited per provider: calls per second, by provider
# name or "default"; 0 = unlimited. Shared across processes through Redis when REDIS_URL is set, per process
# otherwise. E.g. CUTOVER_OFFLINE_RATE_LIMITS="default=20,openai=50".
CUTOVER_OFFLINE_RATE_LIMITS = {key: float(value) for key, value in env.dict(
    "CUTOVER_OFFLINE_RATE_LIMITS", default={"default": "20"}).items()}
CUTOVER_OFFLINE_BURST_SECONDS = env.float("CUTOVER_OFFLINE_BURST_SECONDS", default=1.0)
# How long a shadow or evaluation call waits for a token before its task is retried later instead.
CUTOVER_OFFLINE_MAX_WAIT_SECONDS = env.float("CUTOVER_OFFLINE_MAX_WAIT_SECONDS", default=10.0)
# An evaluation run's calls in flight at once, per provider.
CUTOVER_EVALUATION_MAX_IN_FLIGHT = env.int("CUTOVER_EVALUATION_MAX_IN_FLIGHT", default=16)
# How long a worker holds a shadow sample while it asks the candidate; a run that finds the sample held retries
# once the lease runs out (the holder may have been killed mid-call). Longer than a call with its retries.
CUTOVER_SHADOW_LEASE_SECONDS = env.float("CUTOVER_SHADOW_LEASE_SECONDS", default=120.0)
# Provider call timeout (seconds) for shadow and evaluation calls.
CUTOVER_OFFLINE_CALL_TIMEOUT = env.float("CUTOVER_OFFLINE_CALL_TIMEOUT", default=60.0)
# Shadow and evaluation calls to OpenAI-format endpoints go over raw keep-alive HTTP on one event loop per
# worker process (cutover/providers/loop_client.py); off, every call goes through the official SDK.
CUTOVER_OFFLINE_FAST_PATH = env.bool("CUTOVER_OFFLINE_FAST_PATH", default=True)
CUTOVER_EVALUATION_SCHEDULE_TICK_SECONDS = env.float("CUTOVER_EVALUATION_SCHEDULE_TICK_SECONDS", default=60.0)
CELERY_BEAT_SCHEDULE = {
    "evaluation-schedules": {"task": "migrations_app.tasks.evaluation_schedules_tick",
                             "schedule": CUTOVER_EVALUATION_SCHEDULE_TICK_SECONDS},
    "shadow-samples-sweep": {"task": "migrations_app.tasks.shadow_samples_sweep", "schedule": 300.0},
}
# The openai SDK's bundled HTTP client logs under its own name; every shadow/evaluation call would log a line.
LOGGING["loggers"]["httpx2"] = {"level": "WARNING", "filters": ["redact_url_paths"]}
