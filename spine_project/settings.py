"""Market Spine settings: one module, everything read from the environment (SPEC §3).

Integrations switch on by environment variable; a missing required value fails at start-up.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()


def _parse_lane_limits(raw: str) -> dict[str, int]:
    """Parse `normal=500,backfill=200` into a dict, naming the bad part on error."""
    limits: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        lane, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise ImproperlyConfigured(
                f"SPINE_LANE_LIMITS: expected lane=number, got {part!r} in {raw!r}"
            )
        limits[lane.strip()] = int(value)
    return limits


# --- Core Django ---------------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off "
            "(set DJANGO_DEBUG=1 for local development)."
        )
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is required when DJANGO_DEBUG is off.")
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_dramatiq",
    "executions",
    "dlq",
    "otc",
    "spine_project",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "spine_project.middleware.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "spine_project.urls"
WSGI_APPLICATION = "spine_project.wsgi.application"
ASGI_APPLICATION = "spine_project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "spine_project" / "templates"],
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

# --- Database ------------------------------------------------------------------------------------
# PostgreSQL in production; an embedded SQLite file under var/ when DATABASE_URL is unset.

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'spine.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the portal read while a worker thread writes; IMMEDIATE avoids lock upgrades
        # failing with "database is locked" under concurrent writers.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-spine.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Broker, backend and cache -------------------------------------------------------------------

SPINE_BROKER_URL = env.str("SPINE_BROKER_URL", default="")
SPINE_BACKEND = env.str("SPINE_BACKEND", default="dramatiq" if SPINE_BROKER_URL else "local")
REDIS_URL = env.str(
    "REDIS_URL", default=SPINE_BROKER_URL if SPINE_BROKER_URL.startswith("redis") else ""
)

if SPINE_BROKER_URL.startswith(("redis://", "rediss://")):
    _broker_class, _broker_options = "dramatiq.brokers.redis.RedisBroker", {"url": SPINE_BROKER_URL}
elif SPINE_BROKER_URL.startswith(("amqp://", "amqps://")):
    _broker_class, _broker_options = (
        "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        {"url": SPINE_BROKER_URL},
    )
elif SPINE_BROKER_URL:
    raise ImproperlyConfigured(
        f"SPINE_BROKER_URL must start with redis:// or amqp://, got {SPINE_BROKER_URL!r}"
    )
else:
    # Embedded mode: nothing is sent to a broker; the local backend runs work in-process.
    _broker_class, _broker_options = "dramatiq.brokers.stub.StubBroker", {}

DRAMATIQ_BROKER = {
    "BROKER": _broker_class,
    "OPTIONS": _broker_options,
    "MIDDLEWARE": [
        # The ledger owns retries and time limits (SPEC §4.4): actors run with max_retries=0 and
        # the runner enforces each pipeline's timeout, so dramatiq's TimeLimit is not installed.
        "dramatiq.middleware.AgeLimit",
        "dramatiq.middleware.Retries",
        "dramatiq.middleware.CurrentMessage",
        "django_dramatiq.middleware.DbConnectionsMiddleware",
    ],
}

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "spine",
            "TIMEOUT": 300,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Market Spine --------------------------------------------------------------------------------

SPINE_LANE_LIMITS = _parse_lane_limits(
    env.str("SPINE_LANE_LIMITS", default="normal=500,backfill=200")
)
SPINE_MAX_PENDING = env.int("SPINE_MAX_PENDING", default=1000)
SPINE_RETRY_AFTER_SECONDS = env.int("SPINE_RETRY_AFTER_SECONDS", default=30)
SPINE_LEASE_SECONDS = env.float("SPINE_LEASE_SECONDS", default=30.0)
SPINE_HEARTBEAT_SECONDS = env.float("SPINE_HEARTBEAT_SECONDS", default=SPINE_LEASE_SECONDS / 3)
SPINE_CANCEL_POLL_SECONDS = env.float("SPINE_CANCEL_POLL_SECONDS", default=1.0)
SPINE_LOCAL_WORKERS = env.int("SPINE_LOCAL_WORKERS", default=4)
SPINE_TRACEBACK_LIMIT = 16_000  # characters kept of an error traceback (bounded, SPEC §4.1)

# --- REST API ------------------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "spine_project.errors.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Market Spine API",
    "DESCRIPTION": "Submit and operate market-data pipeline executions; read OTC data.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Logging -------------------------------------------------------------------------------------

SPINE_LOG_FORMAT = env.str("SPINE_LOG_FORMAT", default="console" if DEBUG else "json")
if SPINE_LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(
        f"SPINE_LOG_FORMAT must be json or console, got {SPINE_LOG_FORMAT!r}"
    )
SPINE_LOG_LEVEL = env.str("SPINE_LOG_LEVEL", default="INFO")
LOGGING_CONFIG = None  # spine_project.logging configures stdlib logging and structlog once

from spine_project.logging import configure_logging  # noqa: E402

SPINE_LOG_STREAM = env.str("SPINE_LOG_STREAM", default="stdout")
configure_logging(fmt=SPINE_LOG_FORMAT, level=SPINE_LOG_LEVEL, stream=SPINE_LOG_STREAM)

# --- OTC market data (otc app) -------------------------------------------------------------------

SPINE_OTC_DATA_DIR = env.path("SPINE_OTC_DATA_DIR", default=BASE_DIR / "data")
SPINE_FINRA_API_URL = env.str("SPINE_FINRA_API_URL", default="https://api.finra.org")
SPINE_FINRA_PAGE_SIZE = env.int("SPINE_FINRA_PAGE_SIZE", default=5000)
SPINE_FINRA_TIMEOUT_SECONDS = env.float("SPINE_FINRA_TIMEOUT_SECONDS", default=30.0)
SPINE_FINRA_RETRY_ATTEMPTS = env.int("SPINE_FINRA_RETRY_ATTEMPTS", default=4)
SPINE_FINRA_RETRY_WAIT = env.float("SPINE_FINRA_RETRY_WAIT", default=1.0)
SPINE_FINRA_RATE_LIMIT = env.str("SPINE_FINRA_RATE_LIMIT", default="10/second")
SPINE_CIRCUIT_FAIL_MAX = env.int("SPINE_CIRCUIT_FAIL_MAX", default=5)
SPINE_CIRCUIT_RESET_SECONDS = env.float("SPINE_CIRCUIT_RESET_SECONDS", default=60.0)
