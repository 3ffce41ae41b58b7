"""Liveness and readiness probes for load balancers and Kubernetes."""

import logging

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse

# Once a process has seen every migration applied it stays so: new migrations come with new code,
# which means a new process. Until then each probe looks again (an upgrade's migrate Job may run).
_all_migrations_applied = False
logger = logging.getLogger(__name__)


def healthz(request):
    return JsonResponse({"status": "ok"})


def pending_migrations() -> int:
    global _all_migrations_applied
    if _all_migrations_applied:
        return 0
    executor = MigrationExecutor(connection)
    pending = len(executor.migration_plan(executor.loader.graph.leaf_nodes()))
    _all_migrations_applied = pending == 0
    return pending


def readyz(request):
    """503 naming what is down. The error text (host names, user names, addresses) goes to the log and
    to signed-in site administrators only: anyone can reach this page."""
    problems, details = {}, {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        pending = pending_migrations()
        if pending:
            problems["migrations"] = f"{pending} not applied yet (python manage.py migrate)"
    except Exception as exc:
        problems["database"] = "unreachable"
        details["database"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    try:
        redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2).ping()
    except Exception as exc:
        problems["redis"] = "unreachable"
        details["redis"] = str(exc) or type(exc).__name__
    if problems:
        for name, text in details.items():
            logger.warning("readyz: %s is down: %s", name, text)
        body = {"status": "unavailable", "problems": problems}
        if details and _is_site_admin(request):
            body["details"] = details
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "database": "ok", "migrations": "ok", "redis": "ok"})


def _is_site_admin(request) -> bool:
    try:  # the session lives in the database, which may be the thing that is down
        return bool(request.user.is_authenticated and request.user.is_superuser)
    except Exception:
        return False
