"""At phone width (390 px): the navigation folds into a menu that keeps the Approvals count in sight, the
overview keeps its model column while the environments scroll, and no page or table is cut off: what
does not fit scrolls inside its own box. Screenshots of each page land in test-artifacts/phone-*.png,
and desktop ones in test-artifacts/desktop-*.png."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Role
from accounts.permissions import Actor
from deployments.models import Rollout, RolloutState
from deployments.services import promotions, rollouts
from tests.conftest import member
from tests.support.browser import ARTIFACTS
from tests.support.factories import (
    EnvironmentFactory,
    ModelFactory,
    RegistryFactory,
    VersionFactory,
    add_log_lines,
    succeeded_build,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests"  # tests.support.factories.UserFactory's
PHONE = {"width": 390, "height": 844}

# Every box must end inside the viewport, unless it scrolls inside a box that does.
CLIPPED = """() => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll('main table, main .card, .topbar, main .page-header, main pre')) {
    if (el.closest('[hidden]') || !el.getClientRects().length) continue;
    let box = el, scroller = null;
    while ((box = box.parentElement)) {
      const style = getComputedStyle(box);
      if (['auto', 'scroll'].includes(style.overflowX)) { scroller = box; break; }
    }
    const target = scroller || el;
    const r = target.getBoundingClientRect();
    const name = `${el.tagName.toLowerCase()}.${el.className}`;
    if (r.right > width + 1 || r.left < -1) out.push(`${name} ends at ${Math.round(r.right)}`);
  }
  if (document.documentElement.scrollWidth > width) {
    const wide = [];
    for (const el of document.body.querySelectorAll('*')) {
      const r = el.getBoundingClientRect();
      if (r.right <= width + 1 || !el.getClientRects().length) continue;
      let box = el, scrolls = false;
      while ((box = box.parentElement)) {
        if (['auto', 'scroll', 'hidden'].includes(getComputedStyle(box).overflowX)) { scrolls = true; break; }
      }
      if (!scrolls) wide.push(`${el.tagName.toLowerCase()}.${el.className}`);
    }
    out.push(`the page is ${document.documentElement.scrollWidth} px wide: ${wide.slice(0, 6).join(', ')}`);
  }
  return out;
}"""


def ran(environment, version, build, minutes_ago=5) -> Rollout:
    rollout = Rollout.objects.create(
        environment=environment,
        model=version.model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now() - timedelta(minutes=minutes_ago),
        endpoint=f"http://127.0.0.1:{18000 + rollout_port(environment, version)}",
        deployment_settings={"replicas": 1},
    )
    rollouts.release_succeeded(rollout)
    return rollout


def rollout_port(environment, version) -> int:
    return environment.position * 10 + version.number


@pytest.fixture
def fleet(team, teammate):
    """Three environments, four models running in dev and staging, one request waiting for prod."""
    RegistryFactory()
    dev = EnvironmentFactory(name="dev", position=10, grants={team: Role.ADMIN})
    staging = EnvironmentFactory(name="staging", position=20, grants={team: Role.ADMIN})
    prod = EnvironmentFactory(name="prod", position=30, protected=True, required_approvals=1, grants={team: Role.ADMIN})
    made = {}
    for name in ("sensor-score", "defect-detector-resnet50", "ocr-receipts", "shelf-gap-finder"):
        model = ModelFactory(team=team, name=name, created_by=teammate)
        version = VersionFactory(
            model=model, number=1, metrics={"accuracy": 0.91, "latency_p95_ms": 41.5}, created_by=teammate
        )
        build = succeeded_build(version)
        add_log_lines(
            build, 30, text="Step {n}/30 : RUN pip install --no-index --find-links /wheels -r requirements.txt"
        )
        ran(dev, version, build)
        ran(staging, version, build)
        made[name] = (model, version, build)
    model, version, build = made["sensor-score"]
    promotion = promotions.promotion_request(
        actor=Actor(user=teammate), version=version, environment=prod, reason="Better on the March data; ready."
    )
    return {"dev": dev, "staging": staging, "prod": prod, "promotion": promotion, "made": made}


def pages(fleet) -> dict[str, str]:
    model, _, build = fleet["made"]["sensor-score"]
    rollout = Rollout.objects.filter(environment=fleet["staging"], model=model).first()
    return {
        "overview": "/",
        "approvals": "/promotions/",
        "promotion": f"/promotions/{fleet['promotion'].pk}/",
        "environment": f"/environments/{fleet['staging'].pk}/",
        "environments": "/environments/",
        "model": "/models/vision/sensor-score/",
        "version": "/models/vision/sensor-score/v1/",
        "build": f"/builds/{build.pk}/",
        "rollout": f"/rollouts/{rollout.pk}/",
        "models": "/models/",
        "compare": "/models/vision/defect-detector-resnet50/compare/?a=1&b=1",
        "audit": "/audit/",
        "teams": "/teams/",
        "team": "/teams/vision/",
        "tokens": "/settings/tokens/",
    }


@pytest.fixture
def approver_phone(signed_in, team):
    approver = member(team, "bob", Role.APPROVER)
    session = signed_in(approver.username, PASSWORD)
    session.page.set_viewport_size(PHONE)
    return session


def test_on_a_phone_the_menu_keeps_the_approvals_count_in_sight(approver_phone, fleet):
    page = approver_phone.go("/")
    assert page.locator("#main-nav").is_hidden()
    badge = page.locator(".nav-inbox .count")
    assert badge.inner_text() == "1"
    box = badge.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    toggle = page.locator(".nav-toggle")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    approvals = page.locator("#main-nav >> text=Approvals")
    assert approvals.is_visible()
    box = approvals.bounding_box()
    assert box and box["x"] + box["width"] <= PHONE["width"]
    approver_phone.shot("phone-menu-open")
    approvals.click()
    page.wait_for_url("**/promotions/")
    assert page.locator("#main-nav").is_hidden()


def test_on_a_phone_the_overview_keeps_the_model_column_while_environments_scroll(approver_phone, fleet):
    page = approver_phone.go("/")
    wrap = page.locator(".table-wrap:has(table.matrix)")
    assert wrap.evaluate("(el) => el.scrollWidth > el.clientWidth")  # three environments do not fit
    model_cell = page.locator("table.matrix th[scope=row]").first
    before = model_cell.bounding_box()
    wrap.evaluate("(el) => { el.scrollLeft = el.scrollWidth; }")
    page.wait_for_timeout(100)
    after = model_cell.bounding_box()
    assert abs(after["x"] - before["x"]) < 1  # it stayed
    prod_header = page.locator("table.matrix thead th:has-text('prod')").bounding_box()
    assert prod_header["x"] + prod_header["width"] <= PHONE["width"] + 1  # prod scrolled into view
    approver_phone.shot("phone-overview-scrolled")


def test_no_page_is_cut_off_on_a_phone_or_on_a_desktop(approver_phone, fleet):
    page = approver_phone.page
    for name, path in pages(fleet).items():
        approver_phone.go(path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate(CLIPPED) == [], name
        approver_phone.shot(f"phone-{name}")
    page.set_viewport_size({"width": 1280, "height": 900})
    for name, path in pages(fleet).items():
        approver_phone.go(path)
        assert page.evaluate(CLIPPED) == [], name
        approver_phone.shot(f"desktop-{name}")


def test_the_version_page_points_at_the_request_waiting_for_prod(approver_phone, fleet):
    page = approver_phone.go("/models/vision/sensor-score/v1/")
    link = page.locator(f"#deploy-panel a[href='/promotions/{fleet['promotion'].pk}/']")
    assert link.inner_text() == f"v1 awaits approval (request #{fleet['promotion'].pk})"


def test_no_request_answers_404_not_even_the_favicon(approver_phone, fleet):
    missing = []
    approver_phone.page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    for path in ("/", f"/promotions/{fleet['promotion'].pk}/", "/api/docs/"):
        approver_phone.go(path)
        approver_phone.page.wait_for_load_state("networkidle")
    assert approver_phone.page.request.get(approver_phone.base_url + "/favicon.ico").status == 200
    assert missing == []


def test_the_sign_in_background_spans_any_width(chromium, live_server):
    context = chromium.new_context(viewport={"width": 1920, "height": 900})
    try:
        page = context.new_page()
        for width in (1920, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(live_server.url + "/login/")
            box = page.locator(".auth-page").bounding_box()
            assert box["x"] == 0 and box["width"] == width
            page.screenshot(path=str(ARTIFACTS / f"login-{width}.png"))
    finally:
        context.close()
