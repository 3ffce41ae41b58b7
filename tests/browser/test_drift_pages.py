"""What the drift check found, in Chromium at 1280 and 390 px: the overview and the environment page name the
state and say why, and the environment form offers a remote host's TLS credentials without showing them.
Screenshots land in test-artifacts/drift-*.png."""

import pytest
from django.utils import timezone

from accounts.models import Role
from deployments.models import Drift, Rollout
from tests.browser.test_phone import CLIPPED, PHONE, ran
from tests.conftest import member
from tests.support.factories import EnvironmentFactory, ModelFactory, RegistryFactory, VersionFactory, succeeded_build

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests"  # tests.support.factories.UserFactory's
FOUND = {
    "sensor-score": (
        Drift.MISSING,
        "sensor-score does not run in dev: vision-sensor-score-d3 is exited (exit code 137).",
    ),
    "ocr-receipts": (Drift.UNHEALTHY, "vision-ocr-receipts-d4 (paused) does not answer /v2/health/ready on port 32771"),
    "shelf-gap-finder": (Drift.DRIFTED, "Running registry.local/hotfix:latest, but the release is registry.local/…"),
    "defect-detector": (
        Drift.UNKNOWN,
        "Not checked: The Docker engine at tcp://edge-7.example.net:2376 did not answer.",
    ),
}


@pytest.fixture
def dev(team, teammate):
    RegistryFactory()
    dev = EnvironmentFactory(name="dev", position=10, team=team)
    for name, (drift, detail) in FOUND.items():
        version = VersionFactory(model=ModelFactory(team=team, name=name, created_by=teammate), number=1)
        release = ran(dev, version, succeeded_build(version))
        Rollout.objects.filter(pk=release.pk).update(drift=drift, drift_detail=detail, drift_checked_at=timezone.now())
    return dev


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_drift_states_and_their_reasons_are_shown(signed_in, team, dev, width):
    session = signed_in(member(team, "alice", Role.ADMIN).username, PASSWORD)
    if width == "phone":
        session.page.set_viewport_size(PHONE)

    page = session.go(f"/environments/{dev.pk}/")
    text = page.inner_text("main")
    for _, detail in FOUND.values():
        assert detail in text
    for label in ("missing", "unhealthy", "drifted", "not checked"):
        assert page.locator(".badge", has_text=label).count() == 1
    assert page.evaluate(CLIPPED) == []
    session.shot(f"drift-environment-{width}")

    page = session.go("/")
    assert page.locator(".summary-item", has_text="drifted, missing or unhealthy").inner_text().startswith("3")
    for name in ("sensor-score", "ocr-receipts", "shelf-gap-finder"):
        assert FOUND[name][0] in page.locator("tr", has_text=name).inner_text()
    assert page.evaluate(CLIPPED) == []
    session.shot(f"drift-overview-{width}")

    page = session.go(f"/environments/{dev.pk}/edit/")
    for label in ("Docker TLS CA certificate", "Docker TLS client certificate", "Docker TLS client key"):
        assert page.get_by_label(label).input_value() == ""
    session.shot(f"drift-environment-form-{width}")
