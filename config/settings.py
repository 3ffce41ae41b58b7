"""Slipway settings. Every knob is an environment variable; the README lists them."""

import sys
from pathlib import Path

import dj_database_url

from config.env import (
    ImproperlyConfigured,
    env,
    envbool,
    envchoice,
    envgrouproles,
    envint,
    envlabel,
    envlist,
    envnetworks,
)
from config.logs import FORMATS, logging_config
from deployments.outbound import OutboundPolicy

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env("SLIPWAY_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = envbool("SLIPWAY_DEBUG", False)
SECRET_KEY = env("SLIPWAY_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env("SLIPWAY_ALLOW_INSECURE_DEFAULTS", "") != "1":
        raise ImproperlyConfigured(
            "SLIPWAY_SECRET_KEY is not set (set SLIPWAY_DEBUG=1 or SLIPWAY_ALLOW_INSECURE_DEFAULTS=1 "
            "to use a development key)"
        )
    SECRET_KEY = "slipway-development-key-not-for-production"  # noqa: S105
    # Said at every start of every process (web, worker, beat, manage.py), never silently: this key
    # is public, and it keys sessions, API token digests and (without SLIPWAY_ENCRYPTION_KEYS) the
    # encryption of every stored secret.
    sys.stderr.write(
        "slipway: WARNING: SLIPWAY_SECRET_KEY is not set, so a public development key is used "
        f"({'SLIPWAY_DEBUG' if DEBUG else 'SLIPWAY_ALLOW_INSECURE_DEFAULTS=1'}). Anyone can forge sessions "
        "and read stored secrets: never use this with real data.\n"
    )

# Former secret keys, while one is rotated: sessions and signed values made with them stay valid.
SECRET_KEY_FALLBACKS = envlist("SLIPWAY_SECRET_KEY_FALLBACKS", [])

# Fernet key(s) for secrets at rest (registry passwords, cluster credentials). Comma separated:
# the first encrypts, all decrypt, so keys can be rotated. Derived from SECRET_KEY when unset.
ENCRYPTION_KEYS = envlist("SLIPWAY_ENCRYPTION_KEYS", [])

ALLOWED_HOSTS = envlist("SLIPWAY_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = envlist("SLIPWAY_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "accounts",
    "audit",
    "registry",
    "deployments",
]

MIDDLEWARE = [
    # First, so that every response (static files and errors too) has an id and is counted.
    "config.middleware.RequestIdMiddleware",
    "config.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "config.middleware.ContentSecurityPolicyMiddleware",
    "config.middleware.NulCharacterMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.refusals.RefusalAuditMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.navigation",
                "deployments.context_processors.approvals",
            ],
        },
    }
]

# PostgreSQL in production and in tests; SQLite under var/ only for `make run` without DATABASE_URL.
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'slipway.sqlite3'}")
# A kept connection is checked before each request reuses it: after a database restart the first
# request gets a new connection instead of a 500.
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Concurrent writers (uploads, approvals, rollouts from several web workers and the Celery worker):
    # WAL lets readers go on during a write, IMMEDIATE takes the write lock when a transaction begins
    # (a deferred one that upgrades later fails at once with "database is locked"), and the busy
    # timeout makes a writer wait its turn instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed password sign-ins, counted per account and per connecting address (accounts/throttle.py):
# past the limit, that account or address waits SIGNIN_LOCKOUT_SECONDS, and the form says so.
SIGNIN_MAX_FAILURES_PER_ACCOUNT = envint("SLIPWAY_SIGNIN_MAX_FAILURES_PER_ACCOUNT", 5, minimum=1)
SIGNIN_MAX_FAILURES_PER_ADDRESS = envint("SLIPWAY_SIGNIN_MAX_FAILURES_PER_ADDRESS", 20, minimum=1)
SIGNIN_LOCKOUT_SECONDS = envint("SLIPWAY_SIGNIN_LOCKOUT_SECONDS", 900, minimum=1)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Single sign-on through an OpenID Connect provider: on when an issuer is set. The provider is
# found through its discovery document; the README shows what to register there.
OIDC_ISSUER = env("SLIPWAY_OIDC_ISSUER", "").strip()  # the issuer, or its discovery document's URL
SSO_ENABLED = bool(OIDC_ISSUER)
OIDC_RP_CLIENT_ID = env("SLIPWAY_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env("SLIPWAY_OIDC_CLIENT_SECRET", "")
OIDC_RP_SCOPES = env("SLIPWAY_OIDC_SCOPES", "") or "openid email profile"
OIDC_PROVIDER_NAME = env("SLIPWAY_OIDC_PROVIDER_NAME", "") or "single sign-on"
OIDC_GROUPS_CLAIM = env("SLIPWAY_OIDC_GROUPS_CLAIM", "") or "groups"
# Provider groups to team roles, synced at each sign-in; and the groups whose members are site admins.
OIDC_GROUP_ROLES = envgrouproles("SLIPWAY_OIDC_GROUP_ROLES")
OIDC_ADMIN_GROUPS = envlist("SLIPWAY_OIDC_ADMIN_GROUPS", [])
if SSO_ENABLED and not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
    raise ImproperlyConfigured(
        "SLIPWAY_OIDC_ISSUER is set: SLIPWAY_OIDC_CLIENT_ID and SLIPWAY_OIDC_CLIENT_SECRET are needed too"
    )
# Passwords can be turned off once people sign in through the provider; the break-glass accounts
# (site admins named here) keep theirs, for the day the provider is down, and each use is flagged.
LOCAL_LOGIN = envbool("SLIPWAY_LOCAL_LOGIN", True)
BREAK_GLASS_USERS = envlist("SLIPWAY_BREAK_GLASS_USERS", ["admin"])
if not LOCAL_LOGIN and not SSO_ENABLED:
    raise ImproperlyConfigured("SLIPWAY_LOCAL_LOGIN=false needs SLIPWAY_OIDC_ISSUER: nobody could sign in")
AUTHENTICATION_BACKENDS = ["accounts.sso.LocalPasswordBackend", "accounts.sso.OidcBackend"]
# What mozilla-django-oidc reads; the provider's endpoints come from its discovery document.
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the hint RP-initiated logout sends back to the provider
OIDC_TIMEOUT = 10
OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("SLIPWAY_TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# Artifacts go through Django's storage API: a folder on disk by default, S3-compatible storage
# when SLIPWAY_STORAGE_BACKEND names another backend (e.g. storages.backends.s3.S3Storage).
MEDIA_ROOT = Path(env("SLIPWAY_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {
        "BACKEND": env("SLIPWAY_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploads stream to a temporary file while their size and SHA-256 are counted; the limit is
# enforced chunk by chunk, so a 50 GiB upload is refused after 2 GiB, not after 50.
# Artifacts larger than this (archives, ONNX files) are inspected on a worker, not in the request.
INLINE_INSPECTION_BYTES = envint("SLIPWAY_INLINE_INSPECTION_BYTES", 16 * 1024**2, minimum=0)
INSPECTION_TIMEOUT = envint("SLIPWAY_INSPECTION_TIMEOUT", 600, minimum=10)
MAX_ARTIFACT_SIZE = envint("SLIPWAY_MAX_ARTIFACT_SIZE", 2 * 1024**3, minimum=1)
FILE_UPLOAD_HANDLERS = ["registry.uploads.HashingUploadHandler"]
FILE_UPLOAD_TEMP_DIR = env("SLIPWAY_UPLOAD_TEMP_DIR", "") or None
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024**2

API_TOKEN_DEFAULT_DAYS = envint("SLIPWAY_API_TOKEN_DEFAULT_DAYS", 90, minimum=1)
API_TOKEN_MAX_DAYS = envint("SLIPWAY_API_TOKEN_MAX_DAYS", 365, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.api.permissions.TokenScopes",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "config.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Slipway API",
    "DESCRIPTION": "Register models and versions, build images, deploy and promote them.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: the docs work on networks without internet access.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True


SESSION_COOKIE_HTTPONLY = True
# Secure unless said otherwise: production is behind HTTPS; `make run` (plain HTTP) turns it off.
SESSION_COOKIE_SECURE = envbool("SLIPWAY_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_HSTS_SECONDS = envint("SLIPWAY_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SLIPWAY_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SLIPWAY_HSTS_PRELOAD", False)
# Behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips it from clients' requests).
if envbool("SLIPWAY_TRUST_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = envbool("SLIPWAY_SSL_REDIRECT", False)
SECURE_REFERRER_POLICY = "same-origin"
# No inline scripts anywhere (templates load static/js files; htmx runs without eval). Inline style
# attributes remain, so styles keep 'unsafe-inline'; they cannot run code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)

# `json`: one JSON object per line, each with the request id (X-Request-ID) it was written for.
LOG_FORMAT = envchoice("SLIPWAY_LOG_FORMAT", "plain", FORMATS)
LOGGING = logging_config(log_format=LOG_FORMAT, level=env("SLIPWAY_LOG_LEVEL", "INFO"))

# Who may read /metrics: these networks (by the peer's address), or anyone with the bearer token.
# Where the platform may connect on a user's behalf (webhooks, Docker hosts, registries, clusters):
# loopback, link-local and private networks only when allowed here (deployments/outbound.py).
OUTBOUND_POLICY = OutboundPolicy.from_networks(
    envnetworks("SLIPWAY_OUTBOUND_ALLOWED_NETWORKS", []), envnetworks("SLIPWAY_OUTBOUND_DENIED_NETWORKS", [])
)
# X-Forwarded-For is believed (for the audit trail's client address) only from these proxies.
TRUSTED_PROXIES = envnetworks("SLIPWAY_TRUSTED_PROXIES", [])
METRICS_ALLOWED_NETWORKS = envnetworks("SLIPWAY_METRICS_ALLOWED_NETWORKS", ["127.0.0.0/8", "::1/128"])
METRICS_TOKEN = env("SLIPWAY_METRICS_TOKEN", "")

# Image builds. The Docker engine runs them; images go to the registry configured in the UI.
DOCKER_HOST = env("DOCKER_HOST", "unix:///var/run/docker.sock")
DOCKER_TIMEOUT = envint("SLIPWAY_DOCKER_TIMEOUT", 300, minimum=1)
BASE_IMAGE = env("SLIPWAY_BASE_IMAGE", "python:3.11-slim")
# What a custom Dockerfile may start FROM besides BASE_IMAGE and the team's own repositories.
BUILD_BASE_IMAGES = envlist("SLIPWAY_BUILD_BASE_IMAGES", [])
BUILD_TIMEOUT = envint("SLIPWAY_BUILD_TIMEOUT", 1800, minimum=10)
BUILD_RETRIES = envint("SLIPWAY_BUILD_RETRIES", 3, minimum=1)
BUILD_RETRY_BACKOFF = float(env("SLIPWAY_BUILD_RETRY_BACKOFF", "2"))
BUILD_HEARTBEAT_SECONDS = envint("SLIPWAY_BUILD_HEARTBEAT", 5, minimum=1)
# A running build whose worker has not reported for this long is failed as "worker lost".
BUILD_STALE_AFTER = envint("SLIPWAY_BUILD_STALE_AFTER", 60, minimum=2)
# A queued build older than this is enqueued again (its message may have died with Redis).
BUILD_REQUEUE_AFTER = envint("SLIPWAY_BUILD_REQUEUE_AFTER", 120, minimum=1)
# Queued work (a build or a rollout) that no worker started for this long is failed with that reason,
# so that it never blocks its version or its environment for ever.
QUEUE_EXPIRE_AFTER = envint("SLIPWAY_QUEUE_EXPIRE_AFTER", 3600, minimum=1)
# A build or rollout whose worker loses the database retries with backoff for this long, then fails
# with that reason ("the database was unavailable for 45 s") once the database is back.
DATABASE_RETRY_LIMIT = envint("SLIPWAY_DATABASE_RETRY_LIMIT", 45, minimum=1)
BUILD_WORKDIR = Path(env("SLIPWAY_BUILD_WORKDIR", str(VAR_DIR / "builds")))
WHEEL_CACHE = Path(env("SLIPWAY_WHEEL_CACHE", str(VAR_DIR / "wheel-cache")))
# Where `make run` and the seed put a registry when none is configured in the UI.
DEFAULT_REGISTRY_URL = env("SLIPWAY_DEFAULT_REGISTRY", "")

CELERY_BEAT_SCHEDULE = {
    "reap-stale-builds": {"task": "deployments.tasks.reap_stale_builds", "schedule": 15.0},
}
CELERY_TASK_TIME_LIMIT = BUILD_TIMEOUT + 120

# Labels every container, Deployment, Service and HPA this installation creates, so another installation
# (or another test run) on the same Docker host or namespace never touches them. Empty: an id made once
# and stored in the database.
INSTALLATION_ID = envlabel("SLIPWAY_INSTALLATION_ID", "")

# Rollouts: how long one may take in all, and how often drift is looked for.
ROLLOUT_TIMEOUT = envint("SLIPWAY_ROLLOUT_TIMEOUT", 1800, minimum=10)
DRIFT_CHECK_SECONDS = envint("SLIPWAY_DRIFT_CHECK_SECONDS", 60, minimum=5)
CELERY_BEAT_SCHEDULE["reap-stale-rollouts"] = {"task": "deployments.tasks.reap_stale_rollouts", "schedule": 15.0}
# Drift checks talk to every cluster and Docker host; one that hangs must never hold up a build or a
# rollout. So they run on a queue of their own (`celery worker -Q drift`, the `drift` role of the
# platform image), with their own time limit, short request timeouts and no retries (the next check
# comes soon), and a check not started within one interval is dropped rather than piled up.
DRIFT_QUEUE = "drift"
DRIFT_CHECK_TIMEOUT = envint("SLIPWAY_DRIFT_CHECK_TIMEOUT", 120, minimum=5)
DRIFT_REQUEST_TIMEOUT = envint("SLIPWAY_DRIFT_REQUEST_TIMEOUT", 5, minimum=1)
# Rollouts spend their time waiting on a cluster or a Docker host (minutes, for a slow one): they run on a
# queue of their own, in a worker of threads (`celery worker -Q rollouts --pool threads`, the `rollouts`
# role), so twenty at once take twenty threads rather than waiting in turn for the two processes that
# build images, and a long build never delays a rollout.
ROLLOUT_QUEUE = "rollouts"
CELERY_TASK_ROUTES = {
    "deployments.tasks.check_drift": {"queue": DRIFT_QUEUE},
    "deployments.tasks.run_rollout": {"queue": ROLLOUT_QUEUE},
}
CELERY_BEAT_SCHEDULE["check-drift"] = {
    "task": "deployments.tasks.check_drift",
    "schedule": float(DRIFT_CHECK_SECONDS),
    "options": {"expires": float(DRIFT_CHECK_SECONDS)},
}

# Vulnerability scanning: where the OSV advisories are (a folder or an HTTP(S) URL; empty: no scanning),
# how often they are reloaded, when admins are warned that they are old, and the longest acceptance.
VULN_DB = env("SLIPWAY_VULN_DB", "")
VULN_DB_REFRESH_SECONDS = envint("SLIPWAY_VULN_DB_REFRESH_SECONDS", 6 * 3600, minimum=60)
VULN_DB_MAX_AGE_HOURS = envint("SLIPWAY_VULN_DB_MAX_AGE_HOURS", 48, minimum=1)
VULN_ACCEPT_MAX_DAYS = envint("SLIPWAY_VULN_ACCEPT_MAX_DAYS", 90, minimum=1)
CELERY_BEAT_SCHEDULE["refresh-vulnerability-db"] = {
    "task": "deployments.tasks.refresh_vulnerability_db",
    "schedule": float(VULN_DB_REFRESH_SECONDS),
}

# Links in emails and webhooks point here.
SLIPWAY_BASE_URL = env("SLIPWAY_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
EMAIL_BACKEND = env("SLIPWAY_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("SLIPWAY_FROM_EMAIL", "slipway@localhost")
EMAIL_HOST = env("SLIPWAY_EMAIL_HOST", "localhost")
EMAIL_PORT = envint("SLIPWAY_EMAIL_PORT", 25, minimum=1)
CELERY_BEAT_SCHEDULE["reinspect-stuck"] = {"task": "registry.tasks.reinspect_stuck", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["expire-promotions"] = {"task": "deployments.tasks.expire_promotions", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["requeue-webhook-deliveries"] = {
    "task": "deployments.tasks.requeue_webhook_deliveries",
    "schedule": 15.0,
}
