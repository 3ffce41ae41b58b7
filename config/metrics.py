"""Prometheus metrics at /metrics.

Two sources, chosen for what stays true with several processes (gunicorn workers, Celery workers
in other containers):

- HTTP requests are counted by the web process that served them. Under gunicorn each worker
  writes its counts to files in PROMETHEUS_MULTIPROC_DIR (set by platform/gunicorn.conf.py) and a
  scrape adds them up (prometheus_client's multiprocess mode); elsewhere (runserver, tests) the
  process's own counters are served.
- Builds, rollouts, the queue and releases are counted from the database at scrape time, so any
  web process answers the same whichever worker did the work. The reaper's and the drift check's
  actions are counted from the results their Celery tasks return, in Redis, which every worker
  and web process shares (`record_task_result`, connected in config/celery.py).

Access: only from SLIPWAY_METRICS_ALLOWED_NETWORKS (loopback by default), or with
`Authorization: Bearer $SLIPWAY_METRICS_TOKEN` when a token is set.
"""

import functools
import hmac
import ipaddress
import logging
import os
import re
import time
from datetime import timedelta

import redis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from deployments.models import Build, BuildState, Drift, Rollout, RolloutState

logger = logging.getLogger(__name__)

# --- HTTP, counted per process ----------------------------------------------------------------------

HTTP_REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

http_requests = Counter(
    "slipway_http_requests",
    "HTTP requests answered, by route (the URL pattern), method and status.",
    ["route", "method", "status"],
    registry=HTTP_REGISTRY,
)
http_duration = Histogram(
    "slipway_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=HTTP_BUCKETS,
    registry=HTTP_REGISTRY,
)

_NAMED_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


def route_label(request) -> str:
    """`/api/v1/builds/{pk}/log/` for /api/v1/builds/12/log/: one series per route, not per URL."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "static" if request.path.startswith(f"/{settings.STATIC_URL.lstrip('/')}") else "unmatched"
    return _route_template(match.route)


@functools.lru_cache(maxsize=1024)
def _route_template(route: str) -> str:
    # Asked twice per request (the metrics and the request's log line), for a few hundred routes.
    route = _CONVERTER.sub(r"{\1}", _NAMED_GROUP.sub(r"{\1}", route))
    return "/" + route.replace("^", "").replace("$", "")


class MetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        route = route_label(request)
        method = request.method if request.method in HTTP_METHODS else "other"
        http_requests.labels(route, method, str(response.status_code)).inc()
        http_duration.labels(route, method).observe(time.perf_counter() - started)
        return response


# --- Work done by workers, counted where all processes see it ---------------------------------------

ACTIONS_KEY = "slipway:metrics:actions"
# Celery task name -> how to count what it returned.
REAP_BUILDS = "deployments.tasks.reap_stale_builds"
REAP_ROLLOUTS = "deployments.tasks.reap_stale_rollouts"
CHECK_DRIFT = "deployments.tasks.check_drift"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def actions_of(task_name: str, result) -> dict[str, int]:
    """The counter fields a finished task adds to, from the result the task returned."""
    if task_name == REAP_BUILDS and isinstance(result, dict):
        return {
            "reaper|build|reaped": int(result.get("reaped", 0)),
            "reaper|build|requeued": int(result.get("requeued", 0)),
        }
    if task_name == REAP_ROLLOUTS and isinstance(result, dict):
        return {
            "reaper|rollout|reaped": int(result.get("reaped", 0)),
            "reaper|rollout|requeued": int(result.get("requeued", 0)),
        }
    if task_name == CHECK_DRIFT and isinstance(result, dict):
        counts = {"drift|run|": 1}
        for per_state in result.values():
            for state, number in per_state.items():
                if number:
                    key = f"drift|result|{state or 'unchecked'}"
                    counts[key] = counts.get(key, 0) + int(number)
        return counts
    return {}


def record_task_result(task_name: str, result) -> None:
    counts = {field: n for field, n in actions_of(task_name, result).items() if n}
    if not counts:
        return
    try:
        with _redis().pipeline() as pipe:
            for field, number in counts.items():
                pipe.hincrby(ACTIONS_KEY, field, number)
            pipe.execute()
    except redis.RedisError as exc:
        # The work itself is done and recorded in its rows; only the counter is lost.
        logger.warning("could not count %s's actions in Redis: %s", task_name, exc)


# --- What the database says at scrape time ----------------------------------------------------------

BUILD_BUCKETS = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600)
ROLLOUT_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800)


def _duration_histogram(name, documentation, queryset, labels: dict[str, str], buckets) -> HistogramMetricFamily:
    """A histogram of finished_at - started_at over `queryset`, computed in one query."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    aggregates = {"n": Count("pk"), "total": Sum("duration")}
    for index, bound in enumerate(buckets):
        aggregates[f"le{index}"] = Count("pk", filter=Q(duration__lte=timedelta(seconds=bound)))
    rows = (
        queryset.filter(started_at__isnull=False, finished_at__isnull=False)
        .annotate(duration=duration)
        .values(*labels.values())
        .annotate(**aggregates)
        .order_by(*labels.values())
    )
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for row in rows:
        cumulative = [(str(float(bound)), row[f"le{index}"]) for index, bound in enumerate(buckets)]
        cumulative.append(("+Inf", row["n"]))
        total = row["total"].total_seconds() if row["total"] else 0.0
        family.add_metric([str(row[field]) for field in labels.values()], cumulative, total)
    return family


class PlatformCollector(Collector):
    """Builds, rollouts, the build queue, releases and worker actions, read when scraped."""

    def collect(self):
        try:
            # Read whole before yielding: a database failing halfway must not leave half the families.
            families = [*self.builds(), *self.rollouts()]
        except DatabaseError as exc:
            logger.warning("metrics: the database did not answer: %s", exc)
            families = []
        yield GaugeMetricFamily(
            "slipway_metrics_database_up",
            "1 when the database answered this scrape (build, rollout and release metrics are missing otherwise).",
            value=1 if families else 0,
        )
        yield from families
        yield from self.actions()

    def builds(self):
        finished = CounterMetricFamily(
            "slipway_builds_finished", "Builds that reached a final state, by that state.", labels=["state"]
        )
        counts = dict(
            Build.objects.filter(state__in=BuildState.final()).values_list("state").annotate(n=Count("pk")).order_by()
        )
        for state in BuildState.final():
            finished.add_metric([state], counts.get(state, 0))
        yield finished
        yield _duration_histogram(
            "slipway_build_duration_seconds",
            "Time from a build's start to its final state, by that state.",
            Build.objects.filter(state__in=BuildState.final()),
            {"state": "state"},
            BUILD_BUCKETS,
        )
        active = GaugeMetricFamily("slipway_builds_active", "Builds queued or running, by state.", labels=["state"])
        counts = dict(
            Build.objects.filter(state__in=BuildState.active()).values_list("state").annotate(n=Count("pk")).order_by()
        )
        for state in BuildState.active():
            active.add_metric([state], counts.get(state, 0))
        yield active
        queue = Build.objects.filter(state=BuildState.QUEUED).aggregate(n=Count("pk"), oldest=Min("created_at"))
        yield GaugeMetricFamily("slipway_builds_queued", "Builds waiting for a worker.", value=queue["n"])
        age = (timezone.now() - queue["oldest"]).total_seconds() if queue["oldest"] else 0.0
        yield GaugeMetricFamily(
            "slipway_build_queue_oldest_age_seconds",
            "How long the oldest queued build has waited (0 when none waits).",
            value=max(age, 0.0),
        )

    def rollouts(self):
        finished = CounterMetricFamily(
            "slipway_rollouts_finished",
            "Rollouts that reached a final state, by environment and that state.",
            labels=["environment", "state"],
        )
        for environment, state, number in (
            Rollout.objects.filter(state__in=RolloutState.final())
            .values_list("environment__name", "state")
            .annotate(n=Count("pk"))
            .order_by("environment__name", "state")
        ):
            finished.add_metric([environment, state], number)
        yield finished
        yield _duration_histogram(
            "slipway_rollout_duration_seconds",
            "Time from a rollout's start to its final state, by environment and that state.",
            Rollout.objects.filter(state__in=RolloutState.final()),
            {"environment": "environment__name", "state": "state"},
            ROLLOUT_BUCKETS,
        )
        active = GaugeMetricFamily("slipway_rollouts_active", "Rollouts queued or running, by state.", labels=["state"])
        counts = dict(
            Rollout.objects.filter(state__in=RolloutState.active())
            .values_list("state")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for state in RolloutState.active():
            active.add_metric([state], counts.get(state, 0))
        yield active
        releases = GaugeMetricFamily(
            "slipway_releases", "Current releases, by what the last drift check found.", labels=["drift"]
        )
        counts = dict(
            Rollout.objects.filter(state=RolloutState.SUCCEEDED).values_list("drift").annotate(n=Count("pk")).order_by()
        )
        for drift in Drift.values:
            releases.add_metric([drift or "unchecked"], counts.get(drift, 0))
        yield releases

    def actions(self):
        try:
            stored = {key.decode(): int(value) for key, value in _redis().hgetall(ACTIONS_KEY).items()}
        except redis.RedisError as exc:
            logger.warning("metrics: worker action counts unavailable: %s", exc)
            stored = {}
        reaper = CounterMetricFamily(
            "slipway_reaper_actions",
            "What the reaper did: running work failed because its worker was lost (reaped), "
            "queued builds and rollouts enqueued again (requeued).",
            labels=["kind", "action"],
        )
        for kind, action in (
            ("build", "reaped"),
            ("build", "requeued"),
            ("rollout", "reaped"),
            ("rollout", "requeued"),
        ):
            reaper.add_metric([kind, action], stored.get(f"reaper|{kind}|{action}", 0))
        yield reaper
        yield CounterMetricFamily(
            "slipway_drift_checks", "Drift checks run over all environments.", value=stored.get("drift|run|", 0)
        )
        results = CounterMetricFamily(
            "slipway_drift_check_results", "Releases checked for drift, by what was found.", labels=["result"]
        )
        for drift in Drift.values:
            result = drift or "unchecked"
            results.add_metric([result], stored.get(f"drift|result|{result}", 0))
        yield results


class _Registered(Collector):
    """What another registry holds, for serving it beside other collectors."""

    def __init__(self, registry: CollectorRegistry):
        self.registry = registry

    def collect(self):
        return self.registry.collect()


# --- The endpoint -------------------------------------------------------------------------------------


def access_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
    # The peer's own address: X-Forwarded-For is whatever the client chose to write.
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


def registry_for_scrape() -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_Registered(HTTP_REGISTRY))
    registry.register(PlatformCollector())
    return registry


def metrics(request):
    if not access_allowed(request):
        logger.warning(
            "metrics refused to %s (not in SLIPWAY_METRICS_ALLOWED_NETWORKS, no valid token)",
            request.META.get("REMOTE_ADDR"),
        )
        return JsonResponse(
            {
                "detail": "Metrics are served only to the networks in SLIPWAY_METRICS_ALLOWED_NETWORKS "
                "or with the bearer token in SLIPWAY_METRICS_TOKEN."
            },
            status=403,
        )
    return HttpResponse(generate_latest(registry_for_scrape()), content_type=CONTENT_TYPE_LATEST)
