"""A CI job's release with the installed CLI, against the live server, a real Celery worker, the
Docker engine and a registry: push and build, deploy, promote with an approval, roll back; builds
and rollouts that fail; and a 10,000-line build log followed line by line.

The transcript of the job is saved in test-artifacts/cli-pipeline.txt.
"""

import re
from pathlib import Path
from uuid import uuid4

import pytest
import requests
from django.conf import settings

from deployments.models import Build, Environment, PromotionRequest, Rollout, TargetKind
from tests.support.builds import custom_context
from tests.support.factories import ModelFactory, grant
from tests.support.services import wait_until
from tests.support.targets import remove_containers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MODEL = "cli-pipeline"  # its containers are this test's own on a shared engine
MODEL_SOURCE = """
import numpy as np


class Model:
    def predict(self, inputs):
        return {"y": np.asarray(inputs["x"], dtype=np.float64) * %d}
"""
# Loads in its build's smoke test (no environment there), not where the environment names missing weights.
BROKEN_SOURCE = """
import os


class Model:
    def load(self, folder):
        if not os.path.exists(os.environ.get("WEIGHTS", folder)):
            raise RuntimeError("this model cannot load: weights missing")

    def predict(self, inputs):
        return {"y": inputs["x"]}
"""
SIGNATURE = (
    '{"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}], '
    '"outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}]}'
)


@pytest.fixture
def platform(team, teammate, approver, registry_row, build_settings, celery_worker, docker_engine, tmp_path):
    ModelFactory(team=team, name=MODEL, created_by=teammate)
    deploy_settings = {"progress_deadline_seconds": 30, "env": {"WEIGHTS": "/models/weights.bin"}}
    dev = Environment.objects.create(
        name="dev", position=10, target=TargetKind.DOCKER, deployment_settings=deploy_settings
    )
    prod = Environment.objects.create(
        name="prod", position=30, protected=True, target=TargetKind.DOCKER, deployment_settings=deploy_settings
    )
    grant(dev, team)
    grant(prod, team)
    (tmp_path / "signature.json").write_text(SIGNATURE)
    yield
    remove_containers(docker_engine, settings.INSTALLATION_ID, model=MODEL)


def predict(endpoint: str, value: float) -> float:
    response = requests.post(
        f"{endpoint}/v2/models/{MODEL}/infer",
        json={"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [value]}]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()["outputs"][0]["data"][0]


def between(text: str, start: str, end: str) -> list[str]:
    """The lines strictly between the first line containing `start` and the next containing `end`."""
    lines = text.splitlines()
    first = next(n for n, line in enumerate(lines) if start in line)
    last = next(n for n in range(first + 1, len(lines)) if end in lines[n])
    return lines[first + 1 : last]


def stored_log(obj) -> list[str]:
    return list(obj.log_lines.order_by("seq").values_list("text", flat=True))


def save_transcript(cli, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text("\n\n".join(str(result) for result in cli.transcript))


def test_a_ci_job_pushes_deploys_promotes_with_an_approval_and_rolls_back(
    platform, slipway, token_of, teammate, approver, tmp_path
):
    (tmp_path / "model.py").write_text(MODEL_SOURCE % 2)
    ci = slipway(token_of(teammate))
    try:
        pushed = ci(
            "versions", "push", "model.py", "--model", MODEL, "--signature", "@signature.json",
            "--label", "4f2a9c1", "--wait",
        )  # fmt: skip
        assert pushed.code == 0, pushed
        build = Build.objects.get()
        assert f"Uploaded vision/{MODEL} v1" in pushed.stdout
        # The whole build log, each stored line once and in order, between the build's page and its result.
        assert between(pushed.stdout, f"/builds/{build.pk}/", f"Build #{build.pk} succeeded") == stored_log(build)
        assert f"Build #{build.pk} succeeded: {build.digest_reference}" in pushed.stdout

        deployed = ci("deploy", f"{MODEL}@4f2a9c1", "--env", "dev", "--wait")
        assert deployed.code == 0, deployed
        rollout = Rollout.objects.get()
        steps = between(deployed.stdout, f"/rollouts/{rollout.pk}/", f"Rollout #{rollout.pk} succeeded")
        assert steps == stored_log(rollout)
        assert steps[0] == f"==> Deploying vision/{MODEL} v1 (4f2a9c1) in dev (Docker host)"
        assert f"runs in dev at {rollout.endpoint}" in deployed.stdout
        assert predict(rollout.endpoint, 5) == 10

        promoting = ci.start("promote", f"{MODEL}:1", "--env", "prod", "--reason", "pipeline #812", "--wait")
        promotion = wait_until(lambda: PromotionRequest.objects.first(), timeout=30, message="the request")
        approver_cli = slipway(token_of(approver, scopes=["read", "approve"]))
        approver_cli.transcript = ci.transcript
        approved = approver_cli("approve", str(promotion.pk), "--comment", "Approved for the Thursday release.")
        assert approved.code == 0, approved
        promoted = ci.finish(promoting, "promote", f"{MODEL}:1", "--env", "prod", "--reason", "pipeline #812", "--wait")
        assert promoted.code == 0, promoted
        assert f"Promotion #{promotion.pk}: vision/{MODEL} v1 to prod, pending, 0 of 1 approvals" in promoted.stdout
        assert (
            "approved by approver: Approved for the Thursday release.  [1 of 1 approvals (approver)]" in promoted.stdout
        )
        promotion.refresh_from_db()
        assert promotion.state == "deployed"
        assert f"==> Deploying vision/{MODEL} v1 (4f2a9c1) in prod (Docker host)" in promoted.stdout
        assert f"Rollout #{promotion.rollout_id} succeeded" in promoted.stdout

        releases = ci("releases", "prod", "--json")
        released = [(r["model"], r["version_number"], r["approved_by"]) for r in releases.json()]
        assert released == [(MODEL, 1, ["approver"])]

        (tmp_path / "model.py").write_text(MODEL_SOURCE % 3)
        pushed = ci("versions", "push", "model.py", "--model", MODEL, "--signature", "@signature.json", "--wait")
        assert pushed.code == 0, pushed
        assert ci("deploy", f"{MODEL}:2", "--env", "dev", "--wait").code == 0
        rolled = ci("rollback", "dev", "--model", MODEL, "--reason", "v2 misbehaves", "--wait", "--json")
        assert rolled.code == 0, rolled
        assert f"==> Rolling back to vision/{MODEL} v1" in rolled.stderr  # steps beside, JSON alone on stdout
        back = Rollout.objects.get(pk=rolled.json()["id"])
        assert (back.kind, back.version.number, back.state) == ("rollback", 1, "succeeded")
        assert predict(back.endpoint, 5) == 10
    finally:
        save_transcript(ci, "cli-pipeline.txt")


def test_a_failed_build_and_a_failed_rollout_exit_1_with_their_reasons(
    platform, slipway, token_of, teammate, base_image, tmp_path
):
    ci = slipway(token_of(teammate))
    context = tmp_path / "context.tar.gz"
    context.write_bytes(custom_context(f"FROM {base_image}\nRUN echo about to fail && exit 3\n"))
    failed = ci("versions", "push", str(context), "--model", MODEL, "--framework", "custom", "--wait")
    assert failed.code == 1, failed
    build = Build.objects.get()
    assert f"slipway: build #{build.pk} failed: " in failed.stderr and "non-zero code: 3" in failed.stderr
    assert "about to fail" in failed.stdout

    (tmp_path / "model.py").write_text(BROKEN_SOURCE)
    pushed = ci("versions", "push", "model.py", "--model", MODEL, "--signature", "@signature.json", "--wait")
    assert pushed.code == 0, pushed  # it builds: only running it fails
    broken = ci("deploy", f"{MODEL}:2", "--env", "dev", "--wait")
    assert broken.code == 1, broken
    rollout = Rollout.objects.get()
    assert f"slipway: rollout #{rollout.pk} failed: " in broken.stderr
    assert "weights missing" in broken.stdout  # the container's own words, in the steps
    assert f"/rollouts/{rollout.pk}/" in broken.stderr


def test_following_a_10000_line_build_prints_each_line_once_in_order(
    platform, slipway, token_of, teammate, base_image, tmp_path
):
    # Pauses while the lines come, so the CLI reads the log while the build is still writing it.
    # The nonce keeps the engine from answering the step from its cache, without printing a line.
    script = (
        f'for i in $(seq 1 10000); do echo "line-$i"; if [ $((i % 2500)) -eq 0 ]; then sleep 1; fi; done # {uuid4()}'
    )
    context = tmp_path / "context.tar.gz"
    context.write_bytes(custom_context(f"FROM {base_image}\nRUN {script}\n"))
    ci = slipway(token_of(teammate))
    pushed = ci("versions", "push", str(context), "--model", MODEL, "--framework", "custom", "--json")
    assert pushed.code == 0, pushed
    build_id = pushed.json()["build"]["id"]
    followed = ci("builds", "logs", str(build_id), "--follow")
    assert followed.code == 0, followed
    state_when_started = re.search(r"v1: (\w+)", followed.stderr).group(1)
    assert state_when_started in ("queued", "preparing", "building")  # it was followed, not read afterwards
    build = Build.objects.get(pk=build_id)
    assert followed.stdout.splitlines() == stored_log(build)
    numbered = [int(line[5:]) for line in followed.stdout.splitlines() if re.fullmatch(r"line-\d+", line)]
    assert numbered == list(range(1, 10001))
