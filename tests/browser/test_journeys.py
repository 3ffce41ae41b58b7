"""The three user journeys, end to end in headless Chromium, against the platform with a real Celery
worker, Docker engine and registry. Screenshots of every key page land in test-artifacts/."""

import re
import time

import pytest
import requests
from django.conf import settings
from django.contrib.auth import get_user_model

from accounts.models import Membership, Role, Team
from deployments.models import Build, Environment, PromotionRequest, Rollout, TargetKind
from tests.support.factories import grant
from tests.support.services import wait_until
from tests.support.targets import remove_containers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MODEL_SOURCE = b"""
import numpy as np


class Model:
    def predict(self, inputs):
        return {"score": np.asarray(inputs["features"], dtype=np.float64).sum(axis=-1)}
"""
SIGNATURE = (
    '{"inputs": [{"name": "features", "datatype": "FP64", "shape": [-1, 3]}], '
    '"outputs": [{"name": "score", "datatype": "FP64", "shape": [-1]}]}'
)
PASSWORDS = {"alice": "alice-journey-pw", "bob": "bob-journey-pw", "carol": "carol-journey-pw"}


@pytest.fixture
def platform(registry_row, build_settings, celery_worker, docker_engine):
    team = Team.objects.create(slug="vision", name="Vision")
    for username, role in (("alice", Role.DEVELOPER), ("bob", Role.APPROVER), ("carol", Role.VIEWER)):
        user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORDS[username])
        Membership.objects.create(team=team, user=user, role=role)
    for name, position, protected in (("dev", 10, False), ("prod", 30, True)):
        environment = Environment.objects.create(
            name=name,
            position=position,
            protected=protected,
            target=TargetKind.DOCKER,
            deployment_settings={"progress_deadline_seconds": 60},
        )
        grant(environment, team)
    yield team
    remove_containers(docker_engine, settings.INSTALLATION_ID, model="face-score")


def built(version_number: int, timeout=240) -> Build:
    def done():
        build = Build.objects.filter(version__number=version_number, version__model__name="face-score").first()
        return build if build and build.is_finished else None

    build = wait_until(done, timeout=timeout, interval=0.5, message=f"the build of v{version_number}")
    assert build.state == "succeeded", build.failure_reason
    return build


def test_alice_registers_uploads_watches_the_build_and_deploys_to_dev(platform, signed_in, tmp_path):
    alice = signed_in("alice", PASSWORDS["alice"])
    page = alice.go("/models/new/")
    page.fill("#id_name", "face-score")
    page.fill("#id_task", "scoring")
    page.click("button:has-text('Register model')")
    page.wait_for_url(re.compile(r".*/models/vision/face-score/versions/new/$"))
    alice.shot("journey1-upload-form")

    artifact = tmp_path / "model.py"
    artifact.write_bytes(MODEL_SOURCE)
    page.select_option("#id_framework", "python")
    page.set_input_files("#id_artifact", str(artifact))
    page.fill("#id_signature", SIGNATURE)
    page.fill("#id_metrics", '{"auc": 0.91}')
    page.click("button:has-text('Upload version')")
    page.wait_for_url(re.compile(r".*/models/vision/face-score/v1/$"))

    # The build log arrives live, without a reload, until the build ends.
    page.wait_for_selector("[data-lv-lines] >> text=Resolving dependencies", timeout=60_000)
    alice.shot("journey1-build-running")
    page.wait_for_selector("[data-lv-lines] >> text=Build succeeded", timeout=240_000)
    page.wait_for_selector("#build-summary >> text=Succeeded")
    alice.shot("journey1-build-done")

    page.reload()
    page.click("button:has-text('Deploy to dev')")
    page.wait_for_url(re.compile(r".*/rollouts/\d+/$"))
    page.wait_for_selector(".build-header >> text=Succeeded", timeout=90_000)
    alice.shot("journey1-rollout")
    endpoint = Rollout.objects.get().endpoint
    answer = requests.post(
        f"{endpoint}/v2/models/face-score/infer",
        json={"inputs": [{"name": "features", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
        timeout=10,
    )
    assert answer.json()["outputs"][0]["data"] == [6.0]

    page = alice.go("/models/vision/face-score/")
    assert page.locator("text=Where it runs").is_visible()
    assert page.locator("a.chip:has-text('dev')").count() == 1
    alice.shot("journey1-model-page")
    page = alice.go("/")
    assert page.locator("a.cell-version").all_inner_texts() == ["v1"]
    alice.shot("journey1-overview")


def test_alice_requests_prod_bob_approves_carol_sees_history(platform, signed_in, api):
    alice = signed_in("alice", PASSWORDS["alice"])
    page = alice.go("/models/new/")
    page.fill("#id_name", "face-score")
    page.click("button:has-text('Register model')")
    page.wait_for_url(re.compile(r".*/versions/new/$"))
    page.select_option("#id_framework", "python")
    page.set_input_files(
        "#id_artifact", files=[{"name": "model.py", "mimeType": "text/x-python", "buffer": MODEL_SOURCE}]
    )
    page.fill("#id_signature", SIGNATURE)
    page.click("button:has-text('Upload version')")
    built(1)

    page = alice.go("/models/vision/face-score/v1/")
    page.click("summary:has-text('Request promotion')")
    page.fill("textarea[name=reason]", "Scores match the offline evaluation; ready for prod.")
    page.click("button:has-text('Ask for approval')")
    page.wait_for_url(re.compile(r".*/promotions/\d+/$"))
    assert page.locator("text=You cannot decide this request").is_visible()  # never her own
    alice.shot("journey2-request")

    bob = signed_in("bob", PASSWORDS["bob"])
    page = bob.go("/")
    assert page.locator("nav .count").inner_text() == "1"
    page.click("nav >> text=Approvals")
    bob.shot("journey2-inbox")
    page.click("table >> a:has-text('#')")
    page.fill("#comment", "Approved for the Thursday release.")
    page.click("button:has-text('Approve')")
    page.wait_for_selector("text=Approval recorded.")
    promotion = PromotionRequest.objects.get()
    # Alice's page, still open, shows bob's approval without a reload.
    alice.page.wait_for_selector("#promotion-status >> text=Approved for the Thursday release.", timeout=10_000)
    wait_until(
        lambda: PromotionRequest.objects.get().state == "deployed",
        timeout=120,
        message="the approved promotion to deploy",
    )
    page.reload()
    assert page.locator("h1 >> text=Deployed").is_visible()
    bob.shot("journey2-approved")

    carol = signed_in("carol", PASSWORDS["carol"])
    prod = Environment.objects.get(name="prod")
    page = carol.go(f"/environments/{prod.pk}/")
    assert page.locator("table >> text=face-score").count() >= 1
    carol.shot("journey2-prod-history")
    page = carol.go(f"/promotions/{promotion.pk}/")
    assert page.locator("button:has-text('Approve')").count() == 0
    page = carol.go(f"/audit/?object_type=deployments.promotionrequest&object_id={promotion.pk}")
    assert page.locator("text=promotion.approve").count() >= 1
    carol.shot("journey2-audit")
    refused = api.as_user(get_user_model().objects.get(username="carol")).post(
        f"/api/v1/promotions/{promotion.pk}/approve/", {}, format="json"
    )
    assert refused.status_code in (400, 403)


def test_a_script_with_a_token_drives_a_release_and_the_ui_shows_each_step(platform, signed_in, live_server):
    alice = signed_in("alice", PASSWORDS["alice"])
    page = alice.go("/settings/tokens/")
    page.fill("#id_name", "ci-pipeline")
    page.click("button:has-text('Create token')")
    token = page.locator("#new-token").inner_text().strip()
    alice.shot("journey3-token")
    headers = {"Authorization": f"Bearer {token}"}
    api = f"{live_server.url}/api/v1"

    model = requests.post(
        f"{api}/models/", json={"team": "vision", "name": "face-score"}, headers=headers, timeout=30
    ).json()
    version = requests.post(
        f"{api}/models/{model['id']}/versions/",
        headers=headers,
        timeout=60,
        data={"framework": "python", "signature": SIGNATURE, "source_commit": "4f2a9c1"},
        files={"artifact": ("model.py", MODEL_SOURCE)},
    ).json()
    assert version["number"] == 1, version

    # Tail the build log as a CI job would, then read the result.
    build = wait_until(
        lambda: requests.get(f"{api}/builds/", params={"version": version["id"]}, headers=headers, timeout=30).json()[
            "results"
        ],
        timeout=30,
        message="the build",
    )[0]
    after, finished = 0, False
    deadline = time.monotonic() + 240
    while not finished and time.monotonic() < deadline:
        body = requests.get(
            f"{api}/builds/{build['id']}/log/", params={"after": after}, headers=headers, timeout=30
        ).json()
        after, finished = body["next_after"], body["finished"]
        time.sleep(0.5)
    build = requests.get(f"{api}/builds/{build['id']}/", headers=headers, timeout=30).json()
    assert build["state"] == "succeeded" and build["image_digest"].startswith("sha256:")

    prod = Environment.objects.get(name="prod")
    promotion = requests.post(
        f"{api}/promotions/",
        headers=headers,
        timeout=30,
        json={"version": version["id"], "environment": prod.pk, "reason": "Nightly pipeline #812"},
    ).json()
    assert promotion["state"] == "pending", promotion

    page = alice.go(f"/builds/{build['id']}/")
    assert page.locator(".build-header >> text=Succeeded").is_visible()
    alice.shot("journey3-build")
    page = alice.go(f"/promotions/{promotion['id']}/")
    assert page.locator("text=token ci-pipeline").is_visible()
    assert page.locator("h1 >> text=Pending").is_visible()
    alice.shot("journey3-promotion")
    page = alice.go("/")
    assert page.locator("text=v1 awaits approval").is_visible()
    alice.shot("journey3-overview")
