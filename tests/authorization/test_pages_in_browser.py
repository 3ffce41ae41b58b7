"""What a viewer and an admin are offered, in a real browser (desktop and phone widths): a viewer sees
no Roll back and no Add environment; an admin of a frozen environment is offered Roll back only through
break-glass; the approve form shows the digest it is about. Screenshots go to test-artifacts/."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from audit.models import AuditEvent
from deployments.models import FreezeWindow, PromotionRequest
from tests.authorization.conftest import released
from tests.conftest import member
from tests.support.browser import Session
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-tests"  # tests.support.factories.UserFactory's


@pytest.fixture
def frozen_world(team, model, owner, teammate, viewer, approver):
    RegistryFactory()
    older = VersionFactory(model=model, number=1, created_by=teammate)
    succeeded_build(older, digest_char="b")
    version = VersionFactory(model=model, number=2, created_by=teammate)
    succeeded_build(version)
    dev = EnvironmentFactory(name="dev", team=team, position=10)
    prod = EnvironmentFactory(name="prod", team=team, position=30, protected=True)
    released(older, dev, minutes_ago=30)
    released(version, dev, minutes_ago=10)
    now = timezone.now()
    FreezeWindow.objects.create(
        environment=dev, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=3), reason="year-end close"
    )
    promotion = PromotionRequest.objects.create(
        environment=prod,
        model=model,
        version=version,
        build=version.builds.get(),
        requested_by=teammate,
        image=version.builds.get().digest_reference,
        reason="Better recall",
        expires_at=now + timedelta(hours=4),
    )
    return {"dev": dev, "promotion": promotion}


@pytest.mark.parametrize("width", [1280, 390])
def test_what_each_person_is_offered(chromium, live_server, frozen_world, width):
    dev, promotion = frozen_world["dev"], frozen_world["promotion"]
    carol = Session(chromium, live_server.url, "viewer", PASSWORD)
    carol.page.set_viewport_size({"width": width, "height": 900})
    page = carol.go(f"/environments/{dev.pk}/")
    assert page.locator("text=Roll back").count() == 0
    carol.shot(f"authz-viewer-environment-{width}")
    page = carol.go("/environments/")
    assert page.locator("text=Add environment").count() == 0
    page = carol.go(f"/environments/{dev.pk}/rollback/")  # an action URL opened with GET
    assert page.url.endswith(f"/environments/{dev.pk}/")
    assert page.locator("text=performs an action").count() == 1
    carol.close()

    admin = Session(chromium, live_server.url, "owner", PASSWORD)
    admin.page.set_viewport_size({"width": width, "height": 900})
    page = admin.go(f"/environments/{dev.pk}/")
    assert page.locator("summary:has-text('Roll back (break-glass)')").count() == 1
    page.locator("summary:has-text('Roll back (break-glass)')").click()
    admin.shot(f"authz-admin-frozen-environment-{width}")
    admin.close()

    bob = Session(chromium, live_server.url, "approver", PASSWORD)
    bob.page.set_viewport_size({"width": width, "height": 900})
    page = bob.go(f"/promotions/{promotion.pk}/")
    assert page.locator(f"input[name=digest][value='{promotion.digest}']").count() == 1
    bob.shot(f"authz-approver-promotion-{width}")
    bob.close()
    assert not carol.errors and not admin.errors and not bob.errors


def test_a_developer_sees_why_a_frozen_environment_takes_no_deploy(chromium, live_server, frozen_world, team):
    member(team, "dev2", Role.DEVELOPER)
    dev = frozen_world["dev"]
    alice = Session(chromium, live_server.url, "teammate", PASSWORD)
    page = alice.go("/models/vision/iris/v2/")
    button = page.locator("button:has-text('Deploy to dev')")
    assert button.is_disabled()
    assert "frozen" in button.get_attribute("title")
    alice.shot("authz-developer-frozen-deploy-1280")
    page = alice.go(f"/environments/{dev.pk}/")
    assert page.locator("button:has-text('Roll back')").is_disabled()
    alice.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_a_site_admin_grants_a_team_a_role_in_a_global_environment(
    chromium, live_server, site_admin, team, other_team, teammate, width
):
    shared = EnvironmentFactory(name="shared", position=10, grants={other_team: Role.VIEWER})
    admin = Session(chromium, live_server.url, "root", PASSWORD)
    admin.page.set_viewport_size({"width": width, "height": 900})
    page = admin.go(f"/environments/{shared.pk}/edit/")
    assert page.locator(f"select[name='grants-{other_team.pk}']").input_value() == "viewer"
    page.select_option(f"select[name='grants-{team.pk}']", "developer")
    page.locator("#id_grants").scroll_into_view_if_needed()
    admin.shot(f"authz-grants-form-{width}")
    page.click("button:has-text('Save environment')")
    page.wait_for_url(f"{live_server.url}/environments/{shared.pk}/")
    assert "other up to viewer, vision up to developer" in page.locator("#environment-grants").inner_text()
    admin.shot(f"authz-grants-environment-{width}")
    admin.close()

    alice = Session(chromium, live_server.url, "teammate", PASSWORD)
    alice.page.set_viewport_size({"width": width, "height": 900})
    page = alice.go(f"/environments/{shared.pk}/")
    assert "vision up to developer" in page.locator("#environment-grants").inner_text()
    assert "other" not in page.locator("#environment-grants").inner_text()  # a team she does not see
    alice.close()
    assert not admin.errors and not alice.errors


@pytest.mark.parametrize("width", [1280, 390])
def test_only_an_admin_of_the_team_is_offered_break_glass_on_a_frozen_promotion(
    chromium, live_server, team, model, owner, teammate, width
):
    RegistryFactory()
    succeeded_build(VersionFactory(model=model, number=1, created_by=teammate))
    prod = EnvironmentFactory(name="prod", team=team, position=30, protected=True)
    now = timezone.now()
    freeze = FreezeWindow.objects.create(
        environment=prod, starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=3), reason="year-end close"
    )

    alice = Session(chromium, live_server.url, "teammate", PASSWORD)
    alice.page.set_viewport_size({"width": width, "height": 900})
    page = alice.go("/models/vision/iris/v1/")
    button = page.locator("#deploy-panel button:has-text('Request promotion')")
    assert button.is_disabled()
    assert "only an admin of the environment's team" in button.get_attribute("title")
    assert page.locator("textarea[name=break_glass_justification]").count() == 0
    alice.shot(f"authz-developer-frozen-promotion-{width}")
    alice.close()

    admin = Session(chromium, live_server.url, "owner", PASSWORD)
    admin.page.set_viewport_size({"width": width, "height": 900})
    page = admin.go("/models/vision/iris/v1/")
    page.click("summary:has-text('Request promotion (break-glass)')")
    page.fill("textarea[name=reason]", "Fixes the EU card rejections")
    page.fill("textarea[name=break_glass_justification]", "Incident 4411: every EU card is rejected")
    admin.shot(f"authz-admin-break-glass-promotion-{width}")
    page.click("button:has-text('through the freeze')")
    promotion = PromotionRequest.objects.get()
    page.wait_for_url(f"{live_server.url}/promotions/{promotion.pk}/")
    assert promotion.break_glass_justification == "Incident 4411: every EU card is rejected"
    event = AuditEvent.objects.get(action="promotion.request", outcome="succeeded")
    assert event.flagged and "Incident 4411" in event.reason

    # Once the freeze is over, nobody is asked for a justification.
    promotion.delete()
    freeze.delete()
    page = admin.go("/models/vision/iris/v1/")
    page.click("summary:has-text('Request promotion')")
    assert page.locator("textarea[name=reason]").is_visible()
    assert page.locator("textarea[name=break_glass_justification]").count() == 0
    admin.close()
    assert not alice.errors and not admin.errors
