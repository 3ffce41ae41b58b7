"""The README's CI example with the CLI, run verbatim against the live server with a real worker,
while an approver approves the promotion it waits for."""

import subprocess

import pytest
from django.conf import settings

from deployments.models import Environment, PromotionRequest, Rollout, TargetKind
from tests.support.factories import ModelFactory, grant
from tests.support.readme import code_block
from tests.support.services import wait_until
from tests.support.targets import remove_containers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

MODEL_SOURCE = """
import numpy as np


class Model:
    def predict(self, inputs):
        return {"churn": np.asarray(inputs["x"], dtype=np.float64) / 2}
"""
SIGNATURE = (
    '{"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}], '
    '"outputs": [{"name": "churn", "datatype": "FP64", "shape": [-1]}]}'
)


@pytest.fixture
def churn(team, teammate, registry_row, build_settings, celery_worker, docker_engine):
    ModelFactory(team=team, name="churn", created_by=teammate)
    for name, position, protected in (("dev", 10, False), ("prod", 30, True)):
        environment = Environment.objects.create(
            name=name,
            position=position,
            protected=protected,
            target=TargetKind.DOCKER,
            deployment_settings={"progress_deadline_seconds": 30},
        )
        grant(environment, team)
    yield
    remove_containers(docker_engine, settings.INSTALLATION_ID, model="churn")


def test_the_readme_ci_example_with_the_cli_ships_to_prod(churn, slipway, token_of, teammate, approver, tmp_path):
    script = code_block("slipway versions push")
    (tmp_path / "model.py").write_text(MODEL_SOURCE)
    (tmp_path / "signature.json").write_text(SIGNATURE)
    ci = slipway(token_of(teammate))
    job = subprocess.Popen(
        ["bash", "-e", "-o", "pipefail", "-c", script],  # how CI runners run a job's script
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=ci.environment(CI_COMMIT_SHORT_SHA="4f2a9c1", CI_PIPELINE_ID="812"),
    )
    try:
        promotion = wait_until(lambda: PromotionRequest.objects.first(), timeout=300, message="the promotion")
        approved = slipway(token_of(approver, scopes=["read", "approve"]))("approve", str(promotion.pk))
        assert approved.code == 0, approved
        output, _ = job.communicate(timeout=300)
    finally:
        job.kill()
    assert job.returncode == 0, output
    promotion.refresh_from_db()
    assert promotion.state == "deployed" and promotion.reason == "pipeline #812"
    assert promotion.version.label == "4f2a9c1"
    rollouts = set(Rollout.objects.values_list("environment__name", "state"))
    assert rollouts == {("dev", "succeeded"), ("prod", "succeeded")}
    assert "approved by approver" in output
    # `slipway releases prod`, the last line of the job: churn v1, approved by the approver.
    row = next(line for line in output.splitlines() if line.startswith("vision/churn"))
    assert row.split()[:3] == ["vision/churn", "v1", "succeeded"] and "approver" in row
