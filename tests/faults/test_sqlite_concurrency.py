"""`make run` keeps its data in SQLite: 20 writers at the same instant (uploads, approvals, rollouts)
through the API of a real gunicorn (2 processes, 8 threads each, as `make run` starts it) get no error.
Before WAL, IMMEDIATE transactions and a busy timeout, some answered 500 "database is locked"."""

import json
import threading
import time

import pytest
import requests

from tests.support.builds import custom_context
from tests.support.faults import Platform, RedisServer, figure

SEED = """
import json
from accounts import services as account_services
from accounts.models import Membership, Role, Team
from django.contrib.auth import get_user_model
from django.utils import timezone
from accounts.permissions import Actor
from deployments.models import Build, BuildState, ContainerRegistry, Environment, EnvironmentGrant
from deployments.services import promotions
from registry.models import ModelVersion, RegisteredModel

User = get_user_model()
team = Team.objects.create(slug="vision", name="Vision")
def member(name, role):
    user = User.objects.create_user(name, password="pw-" + name)
    Membership.objects.create(team=team, user=user, role=role)
    return user, account_services.token_create(user=user, name="ci", scopes=["read", "deploy", "approve"])[1]
dev, dev_token = member("dev", Role.DEVELOPER)
approvers = [member(f"approver{n}", Role.APPROVER) for n in range(3)]
ContainerRegistry.objects.create(name="r", url="127.0.0.1:5999", insecure=True)
dev_env = Environment.objects.create(name="dev", position=10, target="docker")
prod = Environment.objects.create(name="prod", position=30, target="docker", protected=True, required_approvals=2)
for environment in (dev_env, prod):
    EnvironmentGrant.objects.create(environment=environment, team=team, role=Role.ADMIN)
def built(name):
    model = RegisteredModel.objects.create(team=team, name=name, created_by=dev)
    version = ModelVersion.objects.create(model=model, number=1, framework="sklearn", artifact_name="m.joblib",
                                          artifact_sha256="0" * 64, artifact_size=1, created_by=dev)
    Build.objects.create(version=version, state=BuildState.SUCCEEDED, finished_at=timezone.now(),
                         image_reference=f"127.0.0.1:5999/vision/{name}:v1-b1", image_digest="sha256:" + "a" * 64)
    return version
rollout_versions = [built(f"deploy{n}").pk for n in range(6)]
promoted = [promotions.promotion_request(actor=Actor(user=dev), version=built(f"promote{n}"), environment=prod,
                                         reason="ship").pk for n in range(2)]
uploads = RegisteredModel.objects.create(team=team, name="uploads", created_by=dev, auto_build=True)
print(json.dumps({"dev": dev_token, "approvers": [token for _, token in approvers], "dev_env": dev_env.pk,
                  "rollout_versions": rollout_versions, "promotions": promoted, "uploads": uploads.pk}))
"""

CHECK = """
import json
from deployments.models import Approval, Build, Rollout
from registry.models import ModelVersion
print(json.dumps({
    "numbers": sorted(ModelVersion.objects.filter(model__name="uploads").values_list("number", flat=True)),
    "builds": Build.objects.filter(version__model__name="uploads").count(),
    "rollouts": Rollout.objects.count(),
    "approvals": Approval.objects.filter(decision="approve").count(),
}))
"""


SEEN_DIGEST = "sha256:" + "a" * 64  # what SEED's builds pushed, as an approver's page shows it


@pytest.fixture
def sqlite_platform(tmp_path):
    broker = RedisServer(tmp_path / "redis").start()  # no worker: the work stays queued, as it should
    platform = Platform(
        tmp_path / "platform", database_url=f"sqlite:///{tmp_path / 'slipway.sqlite3'}", redis_url=broker.url
    )
    try:
        platform.manage("migrate", "--no-input")
        ids = json.loads(platform.manage("shell", "-c", SEED).strip().splitlines()[-1])
        platform.start_web(gunicorn=True)
        yield platform, ids
    finally:
        platform.stop()
        broker.stop()


def test_twenty_concurrent_writers_on_sqlite_get_no_error(sqlite_platform):
    platform, ids = sqlite_platform
    api = f"{platform.url}/api/v1"
    artifact = custom_context("FROM scratch\n")

    def upload():
        files = {"artifact": ("ctx.tar.gz", artifact)}
        return "upload", "dev", f"models/{ids['uploads']}/versions/", {"data": {"framework": "custom"}, "files": files}

    calls = [upload() for _ in range(8)]
    calls += [
        ("rollout", "dev", "rollouts/", {"json": {"version": version, "environment": ids["dev_env"]}})
        for version in ids["rollout_versions"]
    ]
    calls += [
        ("approval", n, f"promotions/{promotion}/approve/", {"json": {"comment": "ok", "digest": SEEN_DIGEST}})
        for promotion in ids["promotions"]
        for n in range(3)
    ]
    assert len(calls) == 20
    start, answers = threading.Barrier(len(calls)), []

    def call(kind, who, path, kwargs):
        token = ids["dev"] if who == "dev" else ids["approvers"][who]
        start.wait()
        began = time.monotonic()
        response = requests.post(f"{api}/{path}", headers={"Authorization": f"Bearer {token}"}, timeout=120, **kwargs)
        answers.append((kind, response.status_code, time.monotonic() - began, response.text[:300]))

    threads = [threading.Thread(target=call, args=c) for c in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    errors = [a for a in answers if a[1] >= 500]
    assert not errors, errors
    by_kind = {kind: sorted(status for k, status, _, _ in answers if k == kind) for kind in ("upload", "rollout")}
    assert by_kind == {"upload": [201] * 8, "rollout": [201] * 6}, answers
    approvals = sorted(status for kind, status, _, _ in answers if kind == "approval")
    assert approvals[:4] == [200] * 4 and all(400 <= s < 500 for s in approvals[4:]), answers
    stored = json.loads(platform.manage("shell", "-c", CHECK).strip().splitlines()[-1])
    assert stored == {"numbers": list(range(1, 9)), "builds": 8, "rollouts": 6 + 2, "approvals": 4}
    assert "Control socket" not in platform.log("web")  # one gunicorn's socket must not be another's
    slowest = max(seconds for _, _, seconds, _ in answers)
    figure(f"SQLite, 20 concurrent writers through gunicorn: 0 errors, slowest answer {slowest:.2f} s")
