"""A rollout stuck in the queue (its message died with Redis) is cancelled from its page; a viewer
sees no button. Screenshots at desktop and phone widths land in test-artifacts/."""

import pytest

from deployments.models import Rollout, RolloutState
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build

pytestmark = [pytest.mark.django_db(transaction=True)]


def test_a_queued_rollout_is_cancelled_from_its_page(signed_in, teammate, viewer, model):
    RegistryFactory()
    version = VersionFactory(model=model)
    build = succeeded_build(version)
    environment = EnvironmentFactory(team=model.team, name="dev")
    rollout = Rollout.objects.create(
        environment=environment, model=model, version=version, build=build, image=build.digest_reference
    )

    looker = signed_in("viewer", "pw-for-tests")
    looker.go(f"/rollouts/{rollout.pk}/")
    assert looker.page.locator("text=Cancel rollout").count() == 0

    session = signed_in("teammate", "pw-for-tests")
    page = session.go(f"/rollouts/{rollout.pk}/")
    session.shot("rollout-queued-cancel-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    session.shot("rollout-queued-cancel-390")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.click("text=Cancel rollout")
    page.wait_for_selector("text=Cancelled by teammate before it started.")
    session.shot("rollout-cancelled-1280")

    rollout.refresh_from_db()
    assert rollout.state == RolloutState.CANCELLED
    assert not session.errors
