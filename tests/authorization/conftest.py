"""The people and places the authorization tests speak of.

Team "vision" (the conftest's owner, teammate, approver, viewer) and team "other", where `dual` is a
viewer while being a developer in "vision"; `other_admin` administers "other".
"""

import pytest
from django.utils import timezone

from accounts.models import Role
from deployments.models import Rollout, RolloutState
from tests.conftest import member
from tests.support.factories import (
    EnvironmentFactory,
    MembershipFactory,
    RegistryFactory,
    VersionFactory,
    succeeded_build,
)


@pytest.fixture
def dual(team, other_team):
    user = member(team, "dual", Role.DEVELOPER)
    MembershipFactory(team=other_team, user=user, role=Role.VIEWER)
    return user


@pytest.fixture
def other_admin(other_team):
    return member(other_team, "other-admin", Role.ADMIN)


@pytest.fixture
def version(model):
    RegistryFactory()
    version = VersionFactory(model=model, number=1)
    succeeded_build(version)
    return version


@pytest.fixture
def other_dev(other_team):
    return EnvironmentFactory(name="other-dev", team=other_team, position=10)


@pytest.fixture
def other_prod(other_team):
    return EnvironmentFactory(name="other-prod", team=other_team, position=30, protected=True)


def released(version, environment, *, requested_by=None, minutes_ago=0):
    """A rollout that succeeded in the environment (the current release there)."""
    build = version.builds.get()
    finished = timezone.now() - timezone.timedelta(minutes=minutes_ago)
    return Rollout.objects.create(
        environment=environment,
        model=version.model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=finished,
        requested_by=requested_by,
    )
