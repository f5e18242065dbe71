"""Market Spine settings: one module, everything read from the environment (SPEC §3).

Integrations switch on by environment variable; a missing required value fails at start-up.
"""

import re
from pathlib import Path
from typing import TypedDict
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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

# The ledger's hot statements (executions.transitions.run_sql) as server-side prepared
# statements: parsed and planned once per connection instead of on every call. Turn off behind a
# pooler that cannot carry them (PgBouncer in transaction mode before 1.22, or without
# max_prepared_statements).
SPINE_DB_PREPARED_STATEMENTS = env.bool("SPINE_DB_PREPARED_STATEMENTS", default=True)

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

# Network timeouts for the broker unless the URL sets its own: a hung broker must fail a send
# (the execution stays `pending` for the reconciler) rather than hang the request that sent it.
_REDIS_TIMEOUTS = {"socket_connect_timeout": "5", "socket_timeout": "10"}
_AMQP_TIMEOUTS = {"socket_timeout": "10", "blocked_connection_timeout": "30"}


def _with_query_defaults(url: str, defaults: dict[str, str]) -> str:
    """`url` with `defaults` added to its query string where it does not set them."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    return urlunsplit(parts._replace(query=urlencode({**defaults, **query})))


class _DramatiqBroker(TypedDict):
    """The shape django-dramatiq reads from `DRAMATIQ_BROKER`."""

    BROKER: str
    OPTIONS: dict[str, object]
    MIDDLEWARE: list[str]


_broker_options: dict[str, object]  # the broker class's keyword arguments
if SPINE_BROKER_URL.startswith(("redis://", "rediss://")):
    _broker_class, _broker_options = (
        "dramatiq.brokers.redis.RedisBroker",
        {"url": _with_query_defaults(SPINE_BROKER_URL, _REDIS_TIMEOUTS)},
    )
elif SPINE_BROKER_URL.startswith(("amqp://", "amqps://")):
    _broker_class, _broker_options = (
        "dramatiq.brokers.rabbitmq.RabbitmqBroker",
        # Publisher confirms: a send that RabbitMQ did not take raises, so the dispatcher leaves
        # the execution `pending` for the reconciler instead of believing it queued.
        {"url": _with_query_defaults(SPINE_BROKER_URL, _AMQP_TIMEOUTS), "confirm_delivery": True},
    )
elif SPINE_BROKER_URL:
    raise ImproperlyConfigured(
        f"SPINE_BROKER_URL must start with redis:// or amqp://, got {SPINE_BROKER_URL!r}"
    )
else:
    # Embedded mode: nothing is sent to a broker; the local backend runs work in-process.
    _broker_class, _broker_options = "dramatiq.brokers.stub.StubBroker", {}

DRAMATIQ_BROKER: _DramatiqBroker = {
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
            # A hung cache must not hang requests (the rate limiter fails open on an error).
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
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
# How old a process's count of active executions may be while every cap is far (below half);
# 0 counts on every dispatch. See executions.dispatcher._ActiveCounts for the overshoot it allows.
SPINE_BACKPRESSURE_RECOUNT_SECONDS = env.float("SPINE_BACKPRESSURE_RECOUNT_SECONDS", default=0.0)
SPINE_LEASE_SECONDS = env.float("SPINE_LEASE_SECONDS", default=30.0)
SPINE_HEARTBEAT_SECONDS = env.float("SPINE_HEARTBEAT_SECONDS", default=SPINE_LEASE_SECONDS / 3)
SPINE_CANCEL_POLL_SECONDS = env.float("SPINE_CANCEL_POLL_SECONDS", default=1.0)
SPINE_LOCAL_WORKERS = env.int("SPINE_LOCAL_WORKERS", default=4)

# --- Workers and reconciliation (executions/reconcile.py, spine_worker, spine_reconcile) ---------
# Queue names are `<prefix>.<lane>`; a separate prefix isolates deployments (or test runs) that
# share one broker.
SPINE_QUEUE_PREFIX = env.str("SPINE_QUEUE_PREFIX", default="spine")
SPINE_RECONCILE_INTERVAL_SECONDS = env.float("SPINE_RECONCILE_INTERVAL_SECONDS", default=15.0)
# A `pending` row this old was not submitted by its dispatcher (crash, broker down).
SPINE_RECONCILE_PENDING_GRACE_SECONDS = env.float(
    "SPINE_RECONCILE_PENDING_GRACE_SECONDS", default=10.0
)
# A `queued` row due this long ago was lost by the broker (flushed, a killed worker's prefetch).
SPINE_RECONCILE_QUEUED_GRACE_SECONDS = env.float(
    "SPINE_RECONCILE_QUEUED_GRACE_SECONDS", default=30.0
)
# A cancel request on a running execution not honoured this long is finished by the reconciler.
SPINE_CANCEL_GRACE_SECONDS = env.float("SPINE_CANCEL_GRACE_SECONDS", default=60.0)

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

# --- Operations portal (issue 5): API pages, docs assets, rate limits ---------------------------

INSTALLED_APPS += ["drf_spectacular_sidecar"]  # Swagger UI served from our static files, no CDN
MIDDLEWARE.insert(
    MIDDLEWARE.index("spine_project.middleware.RequestIdMiddleware") + 1,
    "spine_project.middleware.RateLimitMiddleware",
)
REST_FRAMEWORK |= {
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": env.int("SPINE_API_PAGE_SIZE", default=50),
}
SPECTACULAR_SETTINGS |= {
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"LaneEnum": "executions.models.LaneName"},
}
# Requests per window per client, shared by every process through the cache (Redis when
# REDIS_URL is set). "0" turns rate limiting off.
_rate = env.str("SPINE_RATE_LIMIT", default="600/60").strip()
if _rate != "0" and not re.fullmatch(r"[1-9][0-9]*/[1-9][0-9]*", _rate):
    raise ImproperlyConfigured(f"SPINE_RATE_LIMIT: expected requests/seconds or 0, got {_rate!r}")
SPINE_RATE_LIMIT = None if _rate == "0" else tuple(int(n) for n in _rate.split("/"))
SPINE_RATE_LIMIT_EXEMPT = ("/health/", "/metrics", "/static/")

# --- Hardening (issue 8): an unknown ?format= is a 400, like any other bad query parameter -------
REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"] = "spine_project.negotiation.ContentNegotiation"

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

# --- Production hardening (SPEC §9; deploy/ and .env.example) -----------------------------------
# Secure by default outside debug, so `manage.py check --deploy --fail-level WARNING` is clean.
# TLS usually ends at the ingress: trust its X-Forwarded-Proto only when told to
# (DJANGO_SECURE_PROXY_SSL_HEADER), or a client could claim https on a plain connection.

SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and Prometheus talk plain HTTP to the pod; a redirect to https would fail them.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = env.bool("DJANGO_USE_X_FORWARDED_HOST", default=False)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Kubernetes probes and Prometheus address the pod by its IP (the Host header is the pod IP):
# the chart passes it in through the downward API so host validation accepts it.
_pod_ip = env.str("POD_IP", default="")
if _pod_ip:
    ALLOWED_HOSTS = [*ALLOWED_HOSTS, f"[{_pod_ip}]" if ":" in _pod_ip else _pod_ip]

# --- Observability and operations jobs (issue 6) -------------------------------------------------
# django-prometheus times every request and database query; `/metrics` adds the ledger gauges
# computed at scrape time (spine_project.metrics). With PROMETHEUS_MULTIPROC_DIR set (gunicorn
# with several workers, and every Dramatiq worker), counters from all processes of one pod are
# summed from that directory; a Dramatiq worker then serves them on SPINE_WORKER_METRICS_PORT.

INSTALLED_APPS.append("django_prometheus")
MIDDLEWARE.insert(0, "django_prometheus.middleware.PrometheusBeforeMiddleware")
MIDDLEWARE.append("django_prometheus.middleware.PrometheusAfterMiddleware")
_PROMETHEUS_DB_ENGINES = {
    "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
    "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
}
DATABASES["default"]["ENGINE"] = _PROMETHEUS_DB_ENGINES.get(
    DATABASES["default"]["ENGINE"], DATABASES["default"]["ENGINE"]
)

PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
if PROMETHEUS_MULTIPROC_DIR:
    # prometheus_client writes one file per process there and fails late if the folder is missing.
    try:
        Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} cannot be created: {exc}"
        ) from None
SPINE_WORKER_METRICS_HOST = env.str("SPINE_WORKER_METRICS_HOST", default="0.0.0.0")  # noqa: S104
SPINE_WORKER_METRICS_PORT = env.int("SPINE_WORKER_METRICS_PORT", default=9191)
if PROMETHEUS_MULTIPROC_DIR:
    DRAMATIQ_BROKER["MIDDLEWARE"].append("spine_project.worker_metrics.WorkerMetrics")
# Carries request_id and the trace context from the submitting process into the worker run.
DRAMATIQ_BROKER["MIDDLEWARE"].append("spine_project.messaging.ContextPropagation")
# What a worker process loaded at boot is out of the collector's reach (spine_project.worker_gc).
DRAMATIQ_BROKER["MIDDLEWARE"].append("spine_project.worker_gc.FreezeAfterBoot")

# Tracing (OpenTelemetry) is off unless configured: SPINE_TRACING=1, or an OTLP endpoint.
SPINE_TRACING = env.bool(
    "SPINE_TRACING", default=bool(env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default=""))
)
SPINE_TRACING_EXPORTER = env.str("SPINE_TRACING_EXPORTER", default="otlp")
if SPINE_TRACING_EXPORTER not in ("otlp", "console", "none"):
    raise ImproperlyConfigured(
        f"SPINE_TRACING_EXPORTER must be otlp, console or none, got {SPINE_TRACING_EXPORTER!r}"
    )

# Retention (spine_cleanup): days per kind, e.g. "executions=30,events=30,otc_raw=180"; kinds not
# named keep the default their app registered.
SPINE_RETENTION_DAYS: dict[str, int] = {}
for _part in filter(
    None, (p.strip() for p in env.str("SPINE_RETENTION_DAYS", default="").split(","))
):
    _kind, _sep, _days = _part.partition("=")
    if not _sep or not _days.strip().isdigit():
        raise ImproperlyConfigured(f"SPINE_RETENTION_DAYS: expected kind=days, got {_part!r}")
    SPINE_RETENTION_DAYS[_kind.strip()] = int(_days)
SPINE_CLEANUP_BATCH_SIZE = env.int("SPINE_CLEANUP_BATCH_SIZE", default=1000)
SPINE_SCHEDULER_INTERVAL_SECONDS = env.float("SPINE_SCHEDULER_INTERVAL_SECONDS", default=5.0)

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
