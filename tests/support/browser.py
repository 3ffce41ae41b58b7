"""Headless Chromium (Debian's) driven by Playwright, for the end-to-end journeys."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("SLIPWAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def chromium():

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"needs Chromium at {CHROMIUM}: `make test` installs it (platform/scripts/ensure-chromium.sh)",
            pytrace=False,
        )
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still
    # synchronous code, which Django would otherwise refuse to run "from an async context".
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


class Session:
    """One person's browser: signs in, visits pages, saves screenshots as test artifacts."""

    def __init__(self, browser, base_url: str, username: str, password: str):
        self.base_url = base_url
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", lambda dialog: dialog.accept())  # confirmations of destructive actions
        self.go("/login/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_url(f"{base_url}/")

    def go(self, path: str):
        self.page.goto(self.base_url + path)
        return self.page

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self):
        self.context.close()


@pytest.fixture
def signed_in(chromium, live_server):
    sessions = []

    def open_session(username: str, password: str) -> Session:
        session = Session(chromium, live_server.url, username, password)
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        assert not session.errors, f"JavaScript errors: {session.errors}"
        session.close()
