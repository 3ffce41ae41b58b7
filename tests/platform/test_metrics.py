"""/metrics: HTTP by route and status, builds and rollouts by final state with durations, the build
queue, the reaper's and the drift check's actions; served only to allowed networks or a token."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from config.env import ImproperlyConfigured, envnetworks
from deployments.models import Build, BuildState, Drift, Rollout, RolloutState
from deployments.tasks import check_drift, reap_stale_builds, reap_stale_rollouts
from tests.support.factories import BuildFactory, EnvironmentFactory, VersionFactory, succeeded_build


def scrape(client=None, **extra) -> dict:
    """{(sample name, sorted labels): value} of one scrape."""
    response = (client or Client(REMOTE_ADDR="127.0.0.1")).get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def finished_build(version, state, seconds):
    now = timezone.now()
    return BuildFactory(
        version=version, state=state, started_at=now - timedelta(seconds=seconds), finished_at=now, heartbeat_at=now
    )


def test_http_requests_are_counted_by_route_and_status_with_their_latency():
    client = Client(REMOTE_ADDR="127.0.0.1")
    before = scrape(client)

    for _ in range(3):
        assert client.get("/readyz").status_code == 200
    assert client.get("/api/v1/builds/12345/log/").status_code in (401, 403)
    assert client.get("/no/such/page").status_code == 404
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("slipway_http_requests_total", route="/readyz", method="GET", status="200") == 3
    # One series per route, whatever the id in the URL.
    log_route = "/api/v1/builds/{pk}/log/"
    assert (
        delta("slipway_http_requests_total", route=log_route, method="GET", status="401")
        + delta("slipway_http_requests_total", route=log_route, method="GET", status="403")
        == 1
    )
    assert delta("slipway_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("slipway_http_request_duration_seconds_count", route="/readyz", method="GET") == 3
    assert delta("slipway_http_request_duration_seconds_bucket", route="/readyz", method="GET", le="+Inf") == 3
    assert delta("slipway_http_request_duration_seconds_sum", route="/readyz", method="GET") > 0


def test_builds_are_counted_by_final_state_with_a_duration_histogram():
    version = VersionFactory()
    finished_build(version, BuildState.SUCCEEDED, 20)
    finished_build(VersionFactory(model=version.model), BuildState.SUCCEEDED, 400)
    finished_build(VersionFactory(model=version.model), BuildState.FAILED, 5)
    BuildFactory(version=VersionFactory(model=version.model), state=BuildState.CANCELLED)  # never started

    samples = scrape()

    assert value(samples, "slipway_builds_finished_total", state="succeeded") == 2
    assert value(samples, "slipway_builds_finished_total", state="failed") == 1
    assert value(samples, "slipway_builds_finished_total", state="cancelled") == 1
    assert value(samples, "slipway_build_duration_seconds_bucket", state="succeeded", le="10.0") == 0
    assert value(samples, "slipway_build_duration_seconds_bucket", state="succeeded", le="30.0") == 1
    assert value(samples, "slipway_build_duration_seconds_bucket", state="succeeded", le="600.0") == 2
    assert value(samples, "slipway_build_duration_seconds_bucket", state="succeeded", le="+Inf") == 2
    assert value(samples, "slipway_build_duration_seconds_sum", state="succeeded") == pytest.approx(420, abs=1)
    assert value(samples, "slipway_build_duration_seconds_bucket", state="failed", le="10.0") == 1
    # A build cancelled before it started has no duration to count.
    assert ("slipway_build_duration_seconds_count", (("state", "cancelled"),)) not in samples


def test_the_queue_shows_how_many_builds_wait_and_how_long_the_oldest_has():
    samples = scrape()
    assert value(samples, "slipway_builds_queued") == 0
    assert value(samples, "slipway_build_queue_oldest_age_seconds") == 0

    model = VersionFactory().model
    BuildFactory(version=VersionFactory(model=model), state=BuildState.QUEUED, created_at=timezone.now())
    BuildFactory(
        version=VersionFactory(model=model), state=BuildState.QUEUED, created_at=timezone.now() - timedelta(minutes=5)
    )
    BuildFactory(version=VersionFactory(model=model), state=BuildState.BUILDING, started_at=timezone.now())
    samples = scrape()

    assert value(samples, "slipway_builds_queued") == 2
    assert 300 <= value(samples, "slipway_build_queue_oldest_age_seconds") < 330
    assert value(samples, "slipway_builds_active", state="queued") == 2
    assert value(samples, "slipway_builds_active", state="building") == 1


def make_rollout(environment, build, state, seconds, **fields):
    now = timezone.now()
    return Rollout.objects.create(
        environment=environment,
        model=build.version.model,
        version=build.version,
        build=build,
        image=build.digest_reference,
        state=state,
        started_at=now - timedelta(seconds=seconds),
        finished_at=now,
        heartbeat_at=now,
        **fields,
    )


def test_rollouts_are_counted_by_environment_and_final_state_with_a_duration_histogram():
    staging, prod = EnvironmentFactory(name="staging"), EnvironmentFactory(name="prod")
    build = succeeded_build(VersionFactory())
    make_rollout(staging, build, RolloutState.SUPERSEDED, 8)
    make_rollout(staging, build, RolloutState.SUCCEEDED, 12, drift=Drift.DRIFTED)
    make_rollout(prod, build, RolloutState.FAILED, 200)

    samples = scrape()

    assert value(samples, "slipway_rollouts_finished_total", environment="staging", state="succeeded") == 1
    assert value(samples, "slipway_rollouts_finished_total", environment="staging", state="superseded") == 1
    assert value(samples, "slipway_rollouts_finished_total", environment="prod", state="failed") == 1
    labels = {"environment": "prod", "state": "failed"}
    assert value(samples, "slipway_rollout_duration_seconds_bucket", le="120.0", **labels) == 0
    assert value(samples, "slipway_rollout_duration_seconds_bucket", le="300.0", **labels) == 1
    assert value(samples, "slipway_releases", drift="drifted") == 1
    assert value(samples, "slipway_releases", drift="in_sync") == 0


def test_the_reapers_actions_are_counted_from_what_their_tasks_did(settings):
    settings.BUILD_STALE_AFTER = 60
    model = VersionFactory().model
    long_ago = timezone.now() - timedelta(minutes=10)
    lost = BuildFactory(
        version=VersionFactory(model=model), state=BuildState.BUILDING, started_at=long_ago, heartbeat_at=long_ago
    )
    BuildFactory(version=VersionFactory(model=model), state=BuildState.BUILDING, heartbeat_at=timezone.now())
    before = scrape()

    assert reap_stale_builds.apply().get() == {"reaped": 1, "requeued": 0}
    assert reap_stale_rollouts.apply().get() == {"reaped": 0, "requeued": 0}
    after = scrape()

    assert Build.objects.get(pk=lost.pk).state == BuildState.FAILED
    reaped = ("slipway_reaper_actions_total", {"kind": "build", "action": "reaped"})
    assert value(after, reaped[0], **reaped[1]) - value(before, reaped[0], **reaped[1]) == 1
    for kind, action in (("build", "requeued"), ("rollout", "reaped")):
        assert value(after, reaped[0], kind=kind, action=action) == value(before, reaped[0], kind=kind, action=action)


@pytest.mark.slow
def test_drift_checks_are_counted_with_what_they_found(docker_engine):
    # A release on this machine's Docker engine whose container is not there: "missing".
    environment = EnvironmentFactory(name="edge", target="docker", docker_url="unix:///var/run/docker.sock")
    make_rollout(environment, succeeded_build(VersionFactory()), RolloutState.SUCCEEDED, 3)
    before = scrape()

    check_drift.apply().get()
    after = scrape()

    assert value(after, "slipway_drift_checks_total") - value(before, "slipway_drift_checks_total") == 1
    missing = value(after, "slipway_drift_check_results_total", result="missing")
    assert missing - value(before, "slipway_drift_check_results_total", result="missing") == 1
    assert value(after, "slipway_releases", drift="missing") == 1


def test_metrics_are_refused_outside_the_allowed_networks_without_the_token(settings):
    settings.METRICS_TOKEN = "scrape-secret-123"
    outsider = Client(REMOTE_ADDR="10.20.30.40")

    refused = outsider.get("/metrics")
    assert refused.status_code == 403
    assert "SLIPWAY_METRICS_ALLOWED_NETWORKS" in refused.json()["detail"]
    assert "slipway_" not in refused.content.decode()
    assert outsider.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong-secret").status_code == 403
    # A forwarded-for header is the client's word, not its address.
    assert outsider.get("/metrics", HTTP_X_FORWARDED_FOR="127.0.0.1").status_code == 403

    assert ("slipway_builds_queued", ()) in scrape(outsider, HTTP_AUTHORIZATION="Bearer scrape-secret-123")
    settings.METRICS_ALLOWED_NETWORKS = envnetworks("X", ["10.0.0.0/8"])
    assert outsider.get("/metrics").status_code == 200


def test_without_a_token_set_no_bearer_opens_the_endpoint(settings):
    settings.METRICS_TOKEN = ""
    assert Client(REMOTE_ADDR="10.20.30.40").get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_a_mistyped_network_stops_the_start_naming_the_setting(monkeypatch):
    monkeypatch.setenv("SLIPWAY_METRICS_ALLOWED_NETWORKS", "10.0.0.0/8,10.0.0.300")
    with pytest.raises(ImproperlyConfigured, match=r"SLIPWAY_METRICS_ALLOWED_NETWORKS: '10.0.0.300'"):
        envnetworks("SLIPWAY_METRICS_ALLOWED_NETWORKS", [])
