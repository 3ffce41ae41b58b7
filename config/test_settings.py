"""Settings for the test suite: the real settings, with test defaults for what is unset."""

import os
import secrets

os.environ.setdefault("SLIPWAY_SECRET_KEY", "tests-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/slipway")
# A Redis database of its own, so a `make run` worker on the same Redis never takes test tasks.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
# Every fake the tests talk to (registry, emulated cluster, webhook receivers, the Docker engine) is on
# this machine; the tests of the outbound rule set their own policy.
os.environ.setdefault("SLIPWAY_OUTBOUND_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
# The live servers of the tests speak plain HTTP.
os.environ.setdefault("SLIPWAY_SECURE_COOKIES", "false")
# Every test signs in from 127.0.0.1, and the cache outlives a run: the throttling tests set their own
# limits and addresses (tests/security/test_sign_in_and_settings.py).
os.environ.setdefault("SLIPWAY_SIGNIN_MAX_FAILURES_PER_ACCOUNT", "1000")
os.environ.setdefault("SLIPWAY_SIGNIN_MAX_FAILURES_PER_ADDRESS", "1000")

# This run's own label on every container it deploys: other test runs (and `make run`) share the Docker
# engine. In os.environ, so the Celery workers and servers the tests start inherit the same id.
os.environ.setdefault("SLIPWAY_INSTALLATION_ID", f"tests-{secrets.token_hex(4)}")

from config.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, and only for test users
CELERY_TASK_ALWAYS_EAGER = False
# Static files straight from the source folders: tests do not run collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
