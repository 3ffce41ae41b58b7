"""The demo `make run` loads: `seed_demo` creates the team, users and models; `seed_demo --roll-out` waits
for the real worker to build the versions, deploys them to dev and staging on this Docker engine, and asks
for prod, so a newcomer's first screen shows a living platform. Both are safe to repeat."""

import io

import pytest
from django.conf import settings
from django.core.management import call_command

from accounts.permissions import Actor
from deployments.models import Build, PromotionRequest, Rollout, RolloutState
from deployments.selectors.promotions import inbox
from registry.models import RegisteredModel
from tests.support.targets import remove_containers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_engine(docker_engine):
    """The demo's containers, and nobody else's: a `make run` demo on this engine is team vision too."""
    yield docker_engine
    remove_containers(docker_engine, settings.INSTALLATION_ID, team="vision")


def seed(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_the_demo_comes_alive_with_builds_releases_history_and_a_request_for_bob(
    build_settings, celery_worker, registry_row, demo_engine
):
    said = seed()
    assert "alice  / alice-slipway" in said
    models = {m.name: m for m in RegisteredModel.objects.filter(team__slug="vision")}
    assert set(models) == {"sensor-score", "defect-detector", "shelf-gap"}
    assert [v.number for v in models["defect-detector"].versions.order_by("number")] == [1, 2]

    said = seed("--roll-out", "--timeout", "600")

    assert "done: open the overview" in said, said
    assert "sensor-score v1: build #" in said and "succeeded" in said  # the progress, as it went
    assert Build.objects.exclude(state="succeeded").count() == 0
    running = {
        (r.model.name, r.environment.name): r.version.number
        for r in Rollout.objects.filter(state=RolloutState.SUCCEEDED).select_related("model", "environment", "version")
    }
    assert running == {
        ("sensor-score", "dev"): 1,
        ("sensor-score", "staging"): 1,
        ("defect-detector", "dev"): 2,
        ("defect-detector", "staging"): 2,
        ("shelf-gap", "dev"): 1,
        ("shelf-gap", "staging"): 1,
    }
    history = Rollout.objects.filter(model__name="defect-detector", state=RolloutState.SUPERSEDED)
    assert sorted(r.environment.name for r in history) == ["dev", "staging"]
    promotion = PromotionRequest.objects.get()
    assert (promotion.version.number, promotion.environment.name, promotion.state) == (2, "prod", "pending")
    assert promotion.requested_by.username == "alice"
    bob = promotion.model.team.members.get(username="bob")
    assert [p.pk for p in inbox(Actor(user=bob))] == [promotion.pk]

    # Again, as on the next `make run`: nothing new.
    rollouts, builds = Rollout.objects.count(), Build.objects.count()
    seed()
    said = seed("--roll-out", "--timeout", "60")
    assert (Rollout.objects.count(), Build.objects.count(), PromotionRequest.objects.count()) == (rollouts, builds, 1)
    assert "no longer runs" not in said

    # After `make stop` removed a demo container, the next `make run` deploys it again instead of
    # printing the old rollout's endpoint as if it answered.
    remove_containers(demo_engine, settings.INSTALLATION_ID, team="vision", model="shelf-gap", environment="dev")
    said = seed("--roll-out", "--timeout", "300")
    assert "shelf-gap v1 in dev: rollout #" in said and "no longer runs" in said, said
    assert Rollout.objects.count() == rollouts + 1
    again = Rollout.objects.filter(state=RolloutState.SUCCEEDED).order_by("-pk").first()
    assert (again.model.name, again.environment.name) == ("shelf-gap", "dev")
    assert "earlier run" in said  # the other releases are reported as what they are: history
