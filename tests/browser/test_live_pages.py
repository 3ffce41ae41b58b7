"""Pages update themselves: every page that shows a state which can change shows the change within 2 s
while it is open, without a reload (version, build, rollout, promotion, environment, overview).

The state changes the way the workers change it (the services a runner calls, conditional updates of
the rows), from the test's thread, while Chromium holds the page open. Each test checks the page was
never reloaded: a marker set on `window` when the page opened must still be there.
"""

import time

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.permissions import Actor
from deployments.models import Build, BuildState, PromotionRequest, Rollout, RolloutState
from deployments.services import promotions, rollouts
from tests.conftest import member
from tests.support.factories import (
    BuildFactory,
    EnvironmentFactory,
    RegistryFactory,
    VersionFactory,
    succeeded_build,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests"  # tests.support.factories.UserFactory's
WITHIN = 2.0  # seconds: what the issue asks of every page


@pytest.fixture
def browser(signed_in, teammate):
    session = signed_in(teammate.username, PASSWORD)
    return session


def opened(session, path: str):
    page = session.go(path)
    page.evaluate("() => { window.__notReloaded = true; }")
    return page


def shows_within(page, selector: str, changed_at: float) -> float:
    """Wait until `selector` shows; the seconds it took since the change. Fails past WITHIN."""
    page.wait_for_selector(selector, timeout=WITHIN * 1000 + 500)
    took = time.monotonic() - changed_at
    assert page.evaluate("() => window.__notReloaded === true"), "the page was reloaded"
    assert took <= WITHIN, f"{selector} showed after {took:.2f} s"
    return took


def finish_rollout(rollout: Rollout, endpoint="http://127.0.0.1:18080") -> None:
    """What the runner does when a rollout succeeds."""
    Rollout.objects.filter(pk=rollout.pk).update(
        state=RolloutState.SUCCEEDED, finished_at=timezone.now(), endpoint=endpoint
    )
    rollout.refresh_from_db()
    rollouts.release_succeeded(rollout)
    promotions.release_deployed(rollout)


@pytest.fixture
def dev(team):
    RegistryFactory()
    return EnvironmentFactory(name="dev", position=10, grants={team: Role.ADMIN})


def test_the_version_page_offers_the_deploy_once_the_build_finishes(browser, model, dev):
    version = VersionFactory(model=model, number=1)
    build = BuildFactory(version=version, state=BuildState.BUILDING, started_at=timezone.now())
    page = opened(browser, f"/models/vision/iris/v{version.number}/")
    assert page.locator("#deploy-panel >> text=build it first").is_visible()
    browser.shot("live-version-building")

    Build.objects.filter(pk=build.pk).update(
        state=BuildState.SUCCEEDED,
        finished_at=timezone.now(),
        image_reference="127.0.0.1:5999/vision/iris:v1-b1",
        image_digest="sha256:" + "a" * 64,
        image_size=477_700_000,
    )
    changed = time.monotonic()
    shows_within(page, "#deploy-panel >> button:has-text('Deploy to dev')", changed)
    shows_within(page, "#build-summary >> text=Succeeded", changed)
    assert page.locator("#deploy-panel >> text=build it first").count() == 0
    assert page.locator("#build-summary >> text=455.6 MiB").is_visible()  # as the build log says it
    browser.shot("live-version-built")


def test_the_build_page_follows_the_build(browser, model):
    build = BuildFactory(version=VersionFactory(model=model), state=BuildState.BUILDING, started_at=timezone.now())
    page = opened(browser, f"/builds/{build.pk}/")
    Build.objects.filter(pk=build.pk).update(
        state=BuildState.FAILED, finished_at=timezone.now(), failure_reason="pip could not resolve numpy==9"
    )
    shows_within(page, ".build-header >> text=pip could not resolve numpy==9", time.monotonic())


def test_the_rollout_environment_and_overview_pages_follow_a_rollout(browser, signed_in, teammate, model, dev):
    version = VersionFactory(model=model, number=1)
    succeeded_build(version)
    rollout = rollouts.rollout_start(actor=Actor(user=teammate), version=version, environment=dev)
    Rollout.objects.filter(pk=rollout.pk).update(
        state=RolloutState.PROGRESSING, started_at=timezone.now(), progress={"desired": 2, "ready": 1}
    )
    rollout_page = opened(browser, f"/rollouts/{rollout.pk}/")
    environment_page = opened(signed_in(teammate.username, PASSWORD), f"/environments/{dev.pk}/")
    overview = opened(signed_in(teammate.username, PASSWORD), "/")
    assert environment_page.locator("#environment-releases >> text=Nothing is running here").is_visible()

    finish_rollout(rollout)
    changed = time.monotonic()
    shows_within(rollout_page, ".build-header >> text=Succeeded", changed)
    assert rollout_page.locator("a.endpoint[href='http://127.0.0.1:18080']").is_visible()  # a link
    shows_within(environment_page, "#environment-releases >> a:has-text('v1')", changed)
    shows_within(environment_page, "#environment-history >> text=Succeeded", changed)
    shows_within(overview, "a.cell-version:has-text('v1')", changed)


def test_the_promotion_page_follows_approval_and_deploy(browser, signed_in, teammate, model, team):
    approver = member(team, "approver", Role.APPROVER)
    RegistryFactory()
    staging = EnvironmentFactory(name="staging", position=20, grants={team: Role.ADMIN})
    prod = EnvironmentFactory(name="prod", position=30, protected=True, grants={team: Role.ADMIN})
    version = VersionFactory(model=model, number=1)
    build = succeeded_build(version)
    finish_rollout(
        Rollout.objects.create(
            environment=staging, model=model, version=version, build=build, image=build.digest_reference
        )
    )
    promotion = promotions.promotion_request(
        actor=Actor(user=teammate), version=version, environment=prod, reason="ready"
    )
    page = opened(browser, f"/promotions/{promotion.pk}/")
    assert page.locator("h1 >> text=Pending").is_visible()
    approver_session = signed_in(approver.username, PASSWORD)
    inbox = opened(approver_session, "/promotions/")
    assert inbox.locator(f"#inbox a[href='/promotions/{promotion.pk}/']").is_visible()

    promotions.promotion_approve(actor=Actor(user=approver), promotion=promotion, digest=promotion.digest, comment="go")
    changed = time.monotonic()
    shows_within(page, "h1 >> text=Approved", changed)
    shows_within(page, "#promotion-status >> text=go", changed)
    shows_within(inbox, "#inbox >> text=Nothing waits for you", changed)
    rollout = PromotionRequest.objects.get(pk=promotion.pk).rollout

    finish_rollout(rollout)
    changed = time.monotonic()
    shows_within(page, "h1 >> text=Deployed", changed)
    shows_within(page, "#promotion-header >> text=Deployed.", changed)
    assert page.locator("#promotion-changes >> text=as approved").is_visible()
    browser.shot("live-promotion-deployed")


def test_the_build_page_shows_the_smoke_test_as_a_step_of_its_own(browser, model):
    started = timezone.now()
    build = BuildFactory(
        version=VersionFactory(model=model),
        state=BuildState.TESTING,
        started_at=started,
        steps={
            "preparing": {"started": started.isoformat(), "finished": started.isoformat(), "seconds": 0.4},
            "building": {"started": started.isoformat(), "finished": started.isoformat(), "seconds": 1.1},
            "testing": {"started": started.isoformat()},
        },
    )
    page = opened(browser, f"/builds/{build.pk}/")
    assert page.locator(".steps .step.active", has_text="Smoke test").is_visible()

    steps = {**build.steps, "testing": {**build.steps["testing"], "finished": started.isoformat(), "seconds": 1.7}}
    Build.objects.filter(pk=build.pk).update(state=BuildState.PUSHING, steps={**steps, "pushing": {"started": "x"}})
    shows_within(page, ".steps .step.done:has-text('Smoke test') >> text=1.7 s", time.monotonic())
    browser.shot("build-smoke-test-step")
    page.set_viewport_size({"width": 390, "height": 844})
    browser.shot("build-smoke-test-step-phone")
