"""The pages that refresh themselves every second answer with as many queries for many rows as for few:
the environment page (releases, attempts beside them, history), the promotion page (approvals, the
digest's history), the version page (its deploy panel) and the rollout page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role
from accounts.permissions import Actor
from deployments.models import Rollout, RolloutState
from deployments.services import promotions
from tests.conftest import member
from tests.support.factories import EnvironmentFactory, ModelFactory, RegistryFactory, VersionFactory, succeeded_build


def rollout(model, environment, number, state=RolloutState.SUCCEEDED, digest="a"):
    version = model.versions.filter(number=number).first() or VersionFactory(model=model, number=number)
    build = version.builds.first() or succeeded_build(version, digest)
    return Rollout.objects.create(
        environment=environment,
        model=model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=state,
        finished_at=timezone.now(),
        failure_reason="ImagePullBackOff" if state == RolloutState.FAILED else "",
    )


def queries(client, path) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path).status_code == 200
    return len(captured)


@pytest.fixture
def environments(team):
    RegistryFactory()
    return (
        EnvironmentFactory(name="dev", position=10, grants={team: Role.ADMIN}),
        EnvironmentFactory(name="staging", position=20, grants={team: Role.ADMIN}),
    )


def fleet(team, environments, start, count):
    for n in range(start, start + count):
        model = ModelFactory(team=team, name=f"m-{n}")
        for environment in environments:
            rollout(model, environment, 1)
            rollout(model, environment, 2, state=RolloutState.FAILED, digest="b")


def test_the_environment_page_costs_the_same_for_many_models(client, viewer, team, environments):
    client.force_login(viewer)
    dev = environments[0]
    fleet(team, environments, 0, 2)
    few = queries(client, f"/environments/{dev.pk}/")
    fleet(team, environments, 2, 8)
    assert queries(client, f"/environments/{dev.pk}/") == few


def test_the_version_rollout_and_promotion_pages_cost_the_same_for_many_rows(
    client, teammate, approver, team, model, environments
):
    client.force_login(teammate)
    dev, staging = environments
    prod = EnvironmentFactory(name="prod", position=30, protected=True, required_approvals=5, grants={team: Role.ADMIN})
    current = rollout(model, dev, 1)
    rollout(model, staging, 1)
    version = current.version
    promotion = promotions.promotion_request(actor=Actor(user=teammate), version=version, environment=prod, reason="r")
    promotions.promotion_approve(actor=Actor(user=approver), promotion=promotion, digest=promotion.digest)
    paths = [
        f"/models/vision/{model.name}/v1/",
        f"/rollouts/{current.pk}/",
        f"/promotions/{promotion.pk}/",
    ]
    few = [queries(client, path) for path in paths]

    for n in range(3):
        EnvironmentFactory(name=f"edge-{n}", position=40 + n, grants={team: Role.ADMIN})
        promotions.promotion_approve(
            actor=Actor(user=member(team, f"approver-{n}", Role.APPROVER)), promotion=promotion, digest=promotion.digest
        )
    for _ in range(5):
        rollout(model, staging, 1)  # the digest's history grows
    rollout(model, dev, 2, state=RolloutState.FAILED, digest="b")
    assert [queries(client, path) for path in paths] == few
