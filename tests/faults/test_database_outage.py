"""PostgreSQL stopped for 10 s and started again while a build and a rollout run, and a worker SIGKILLed
mid-build, on a platform of its own: its own PostgreSQL and Redis (other ports, a temporary folder),
web server and Celery worker as separate processes, driven through the HTTP API. Each test checks that
nothing is lost, nothing is stuck, and the recorded reason is the true one; the figures are printed
(run with -s to see them)."""

import json
import re
import textwrap
import time

import pytest
import requests

from tests.support.builds import custom_context
from tests.support.faults import Platform, PostgresServer, RedisServer, figure
from tests.support.services import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

OUTAGE = 10  # seconds PostgreSQL stays down

# Run in the platform's own database before each test; repeatable (the audit trail refuses a flush).
SEED = """
import json
from accounts import services as account_services
from accounts.models import Membership, Role, Team
from django.contrib.auth import get_user_model
from deployments.models import ContainerRegistry, Environment, EnvironmentGrant, TargetKind
from registry.models import RegisteredModel
team, _ = Team.objects.get_or_create(slug="vision", defaults={{"name": "Vision"}})
user, made = get_user_model().objects.get_or_create(username="dev")
if made:
    Membership.objects.create(team=team, user=user, role=Role.DEVELOPER)
_, secret = account_services.token_create(
    user=user, name={namespace!r}, scopes=["read", "deploy"], expires_in_days=1
)
ContainerRegistry.objects.get_or_create(
    team=None, defaults=dict(name="r", url={registry!r}, username={username!r}, password={password!r}, insecure=True)
)
environment = Environment.objects.create(
    name={namespace!r}, position=Environment.objects.count() + 10, target=TargetKind.KUBERNETES,
    namespace={namespace!r}, kubeconfig={kubeconfig!r},
    deployment_settings={{"replicas": 1, "progress_deadline_seconds": 60}},
)
EnvironmentGrant.objects.create(environment=environment, team=team, role=Role.ADMIN)
model = RegisteredModel.objects.create(team=team, name={namespace!r}, created_by=user)
print(json.dumps({{"token": secret, "environment": environment.pk, "model": model.pk}}))
"""


class Api:
    def __init__(self, platform: Platform, token: str):
        self.base, self.session = f"{platform.url}/api/v1", requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> requests.Response:
        return self.session.get(f"{self.base}/{path}", timeout=30)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.session.post(f"{self.base}/{path}", timeout=60, **kwargs)

    def ok(self, path: str) -> dict:
        answer = self.get(path)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])
        return answer.json()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, kube_backend, oci_registry, base_image):
    folder = tmp_path_factory.mktemp("faults-platform")
    database, broker = PostgresServer().init(), RedisServer(folder / "redis").start()
    platform = Platform(
        folder,
        database_url=database.url,
        redis_url=broker.url,
        env={"SLIPWAY_BASE_IMAGE": base_image, "SLIPWAY_DATABASE_RETRY_LIMIT": "40", "SLIPWAY_ROLLOUT_TIMEOUT": "120"},
    )
    try:
        platform.manage("migrate", "--no-input")
        yield platform, database, broker
    finally:
        platform.stop()
        broker.stop()
        database.destroy()


@pytest.fixture
def world(stack, kube_cluster, oci_registry, request):
    platform, database, broker = stack
    seed = SEED.format(
        registry=oci_registry.host,
        username=oci_registry.username,
        password=oci_registry.password,
        namespace=kube_cluster.namespace,
        kubeconfig=kube_cluster.kubeconfig.read_text(),
    )
    ids = json.loads(platform.manage("shell", "-c", seed).strip().splitlines()[-1])
    if "web" not in platform.processes:
        platform.start_web()
    if "worker" not in platform.processes:
        platform.start_worker()
    yield platform, database, broker, Api(platform, ids["token"]), ids
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        for name in ("worker", "web"):
            print(f"\n--- {name} log (end) ---\n{platform.log(name)[-4000:]}")


def upload(api: Api, model: int, dockerfile: str) -> tuple[int, int]:
    answer = api.post(
        f"models/{model}/versions/",
        data={"framework": "custom"},
        files={"artifact": ("ctx.tar.gz", custom_context(dockerfile))},
    )
    assert answer.status_code == 201, answer.text
    version = answer.json()["id"]
    build = wait_until(lambda: api.ok(f"builds/?version={version}")["results"], timeout=30, message="the build")
    return version, build[0]["id"]


def outage(database: PostgresServer, api: Api) -> dict:
    """Stop PostgreSQL for OUTAGE seconds; what a client saw meanwhile and right after."""
    database.stop()
    during = api.get("builds/")
    time.sleep(OUTAGE)
    database.start()
    after = api.get("builds/")  # the web server's kept connection died with the server
    return {"during": during, "after": after}


def check_user_view(seen: dict) -> str:
    during, after = seen["during"], seen["after"]
    assert during.status_code == 500 and during.headers["Content-Type"] == "application/json"
    assert during.json()["request_id"] == during.headers["X-Request-ID"]
    assert after.status_code == 200, after.text[:300]  # health-checked: no 500 on a stale connection
    return f"during: {during.status_code} JSON with request id; first request after: {after.status_code}"


def whole_log(api: Api, kind: str, pk: int) -> list[dict]:
    lines = api.ok(f"{kind}/{pk}/log/?after=0&limit=5000")["lines"]
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1)), "a log line was lost"
    return lines


def test_a_build_survives_postgresql_stopped_for_10_s(world, base_image):
    platform, database, _, api, ids = world
    marker = time.time_ns()
    _, build = upload(api, ids["model"], f"FROM {base_image}\nRUN sleep 6 && echo built-{marker}\n")
    wait_until(lambda: api.ok(f"builds/{build}/")["state"] == "building", timeout=90, message="building")
    time.sleep(1)

    stopped = time.monotonic()
    seen = outage(database, api)
    final = wait_until(
        lambda: (b := api.ok(f"builds/{build}/"))["finished"] and b, timeout=180, interval=1, message="the build"
    )
    took = time.monotonic() - stopped

    assert final["state"] == "succeeded", final["failure_reason"]
    text = "\n".join(line["text"] for line in whole_log(api, "builds", build))
    assert f"built-{marker}" in text and "Pushed " in text
    assert "database unavailable" in platform.log("worker")  # the worker did see the outage
    seen_by_user = check_user_view(seen)
    figure(f"build, PostgreSQL down {OUTAGE} s: {final['state']} {took:.1f} s after the stop; {seen_by_user}")


def test_a_rollout_survives_postgresql_stopped_for_10_s(world, base_image, kube_cluster):
    _, database, _, api, ids = world
    version, build = upload(api, ids["model"], f"FROM {base_image}\nRUN echo rollout-{time.time_ns()}\n")
    wait_until(lambda: api.ok(f"builds/{build}/")["finished"], timeout=180, interval=1, message="the build")
    assert api.ok(f"builds/{build}/")["state"] == "succeeded"
    kube_cluster.controller.ready_delay = OUTAGE + 4  # pods get ready after the database is back
    answer = api.post("rollouts/", json={"version": version, "environment": ids["environment"]})
    assert answer.status_code == 201, answer.text
    rollout = answer.json()["id"]
    wait_until(lambda: api.ok(f"rollouts/{rollout}/")["state"] == "progressing", timeout=60, message="progress")

    stopped = time.monotonic()
    seen = outage(database, api)
    final = wait_until(
        lambda: (r := api.ok(f"rollouts/{rollout}/"))["finished"] and r, timeout=120, interval=1, message="rollout"
    )
    took = time.monotonic() - stopped

    assert final["state"] == "succeeded", final["failure_reason"]
    whole_log(api, "rollouts", rollout)
    assert not api.ok("rollouts/?state=queued&state=applying&state=progressing")["results"], "something is stuck"
    seen_by_user = check_user_view(seen)
    figure(f"rollout, PostgreSQL down {OUTAGE} s: {final['state']} {took:.1f} s after the stop; {seen_by_user}")


def test_a_worker_killed_while_building_is_reaped_with_the_true_reason_and_its_folder_removed(world, base_image):
    platform, _, _, api, ids = world
    _, build = upload(api, ids["model"], f"FROM {base_image}\nRUN sleep 60 # killed-{time.time_ns()}\n")
    wait_until(lambda: api.ok(f"builds/{build}/")["state"] == "building", timeout=90, message="building")
    workdir = platform.folder / "builds" / str(build)
    assert workdir.is_dir()

    platform.kill("worker")
    killed = time.monotonic()
    reap = textwrap.dedent(
        """
        from django.test.utils import override_settings
        from deployments.services.builds import reap_stale_builds
        with override_settings(BUILD_STALE_AFTER=3):
            print(reap_stale_builds())
        """
    )
    final = wait_until(
        lambda: platform.manage("shell", "-c", reap) and (b := api.ok(f"builds/{build}/"))["finished"] and b,
        timeout=60,
        interval=1,
        message="the reaper",
    )
    took = time.monotonic() - killed
    platform.start_worker()

    assert final["state"] == "failed"
    assert final["failure_reason"] == "The worker running this build was lost (no heartbeat for 3 s)."
    assert not workdir.exists(), "the killed build's work folder is still there"
    figure(f"build, worker SIGKILLed while building: failed {took:.1f} s after the kill, work folder removed")


REAP = """
from django.test.utils import override_settings
from deployments.runners.rollouts import reap
from deployments.services.builds import reap_stale_builds
with override_settings(BUILD_STALE_AFTER=3):
    print(reap_stale_builds(), reap())
"""


def built_version(api: Api, model: int, base_image: str, extra: str = "") -> int:
    version, build = upload(api, model, f"FROM {base_image}\nRUN echo {extra}-{time.time_ns()}\n")
    final = wait_until(
        lambda: (b := api.ok(f"builds/{build}/"))["finished"] and b, timeout=180, interval=1, message="the build"
    )
    assert final["state"] == "succeeded", final["failure_reason"]
    return version


def deploy(api: Api, version: int, environment: int) -> int:
    answer = api.post("rollouts/", json={"version": version, "environment": environment})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def finished(api: Api, kind: str, pk: int, timeout: float = 120) -> dict:
    return wait_until(
        lambda: (r := api.ok(f"{kind}/{pk}/"))["finished"] and r, timeout=timeout, interval=1, message=f"{kind} {pk}"
    )


def test_a_database_away_for_longer_than_the_limit_fails_the_rollout_with_that_reason(world, base_image, kube_cluster):
    platform, database, _, api, ids = world
    version = built_version(api, ids["model"], base_image)
    platform.kill("worker")
    platform.start_worker("impatient", env={"SLIPWAY_DATABASE_RETRY_LIMIT": "3"})
    try:
        kube_cluster.controller.ready_delay = 60
        rollout = deploy(api, version, ids["environment"])
        wait_until(lambda: api.ok(f"rollouts/{rollout}/")["state"] == "progressing", timeout=60, message="progress")
        stopped = time.monotonic()
        outage(database, api)
        final = finished(api, "rollouts", rollout)
        took = time.monotonic() - stopped
    finally:
        platform.kill("impatient")

    assert final["state"] == "failed"
    assert re.fullmatch(
        r"The database was unavailable for [34] s, longer than a worker waits for it "
        r"\(SLIPWAY_DATABASE_RETRY_LIMIT, 3 s\)\.",
        final["failure_reason"],
    ), final["failure_reason"]
    assert "was lost" not in final["failure_reason"]  # not the reaper's "worker lost"
    figure(
        f"rollout, PostgreSQL down {OUTAGE} s past a 3 s limit: failed {took:.1f} s after the stop, reason: "
        f"{final['failure_reason']}"
    )


def test_a_rollout_taken_while_postgresql_is_down_is_claimed_once_it_is_back(world, base_image):
    platform, database, _, api, ids = world
    version = built_version(api, ids["model"], base_image)
    platform.kill("worker")
    rollout = deploy(api, version, ids["environment"])  # its message waits in Redis
    database.stop()
    stopped = time.monotonic()
    platform.start_worker(wait=False)
    time.sleep(OUTAGE)
    database.start()
    final = finished(api, "rollouts", rollout)
    took = time.monotonic() - stopped

    assert final["state"] == "succeeded", final["failure_reason"]
    figure(f"rollout queued while PostgreSQL was down {OUTAGE} s: {final['state']} {took:.1f} s after the stop")


def test_a_worker_killed_while_pushing_is_reaped_and_a_new_build_succeeds(world, base_image):
    platform, _, _, api, ids = world
    blob = f"RUN head -c 200000000 /dev/urandom > /blob-{time.time_ns()}"
    version, build = upload(api, ids["model"], f"FROM {base_image}\n{blob}\n")
    wait_until(lambda: api.ok(f"builds/{build}/")["state"] == "pushing", timeout=120, interval=0.2, message="push")
    platform.kill("worker")
    killed = time.monotonic()
    final = wait_until(
        lambda: platform.manage("shell", "-c", REAP) and (b := api.ok(f"builds/{build}/"))["finished"] and b,
        timeout=60,
        interval=1,
        message="the reaper",
    )
    took = time.monotonic() - killed
    platform.start_worker()

    assert final["state"] == "failed"
    assert final["failure_reason"] == "The worker running this build was lost (no heartbeat for 3 s)."
    assert not (platform.folder / "builds" / str(build)).exists()
    again = api.post("builds/", json={"version": version})
    assert again.status_code == 201, again.text
    rebuilt = finished(api, "builds", again.json()["id"], timeout=240)
    assert rebuilt["state"] == "succeeded", rebuilt["failure_reason"]
    figure(f"build, worker SIGKILLed while pushing: failed {took:.1f} s after the kill; the rebuild succeeded")


def test_a_worker_killed_while_rolling_out_is_reaped_and_the_cluster_rolled_back(world, base_image, kube_cluster):
    platform, _, _, api, ids = world
    first = built_version(api, ids["model"], base_image, "first")
    second = built_version(api, ids["model"], base_image, "second")
    good = finished(api, "rollouts", deploy(api, first, ids["environment"]))
    assert good["state"] == "succeeded"
    kube_cluster.controller.ready_delay = 60
    lost = deploy(api, second, ids["environment"])
    wait_until(lambda: api.ok(f"rollouts/{lost}/")["state"] == "progressing", timeout=60, message="progress")
    platform.kill("worker")
    killed = time.monotonic()
    kube_cluster.controller.ready_delay = 0.2
    final = wait_until(
        lambda: platform.manage("shell", "-c", REAP) and (r := api.ok(f"rollouts/{lost}/"))["finished"] and r,
        timeout=60,
        interval=1,
        message="the reaper",
    )
    platform.start_worker()
    rollback = wait_until(
        lambda: api.ok(f"rollouts/?kind=auto_rollback&environment={ids['environment']}")["results"],
        timeout=30,
        message="the automatic rollback",
    )[0]
    back = finished(api, "rollouts", rollback["id"])
    took = time.monotonic() - killed

    assert final["state"] == "failed" and "worker running this rollout was lost" in final["failure_reason"]
    assert rollback["replaces"] == lost and back["state"] == "succeeded"
    deployments = kube_cluster.apps.list_namespaced_deployment(kube_cluster.namespace).items
    assert [d.spec.template.spec.containers[0].image for d in deployments] == [good["image"]]
    figure(f"rollout, worker SIGKILLed while rolling out: failed, rolled back to v1, cluster on v1 {took:.1f} s after")


def test_redis_stopped_and_started_during_a_build(world, base_image):
    _, _, broker, api, ids = world
    _, build = upload(api, ids["model"], f"FROM {base_image}\nRUN sleep 6 && echo r-{time.time_ns()}\n")
    wait_until(lambda: api.ok(f"builds/{build}/")["state"] == "building", timeout=90, message="building")
    broker.stop()
    stopped = time.monotonic()
    time.sleep(5)
    broker.start()
    built = finished(api, "builds", build, timeout=180)
    took = time.monotonic() - stopped

    assert built["state"] == "succeeded", built["failure_reason"]
    whole_log(api, "builds", build)
    figure(f"build, Redis down 5 s while building: {built['state']} {took:.1f} s after the stop")
