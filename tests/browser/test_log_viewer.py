"""The live log viewer in a real browser: templates/_log_viewer.html, static/js/logviewer.js, static/css/logviewer.css.

The viewer runs on the build page of the platform served by `live_server`, against the real log API
(/api/v1/builds/<id>/log/). Logs are real rows: stored up front the way the factories store them, and
added while the page is open with the platform's own LogWriter, as a build runner adds them. Playwright's
routing watches the browser's requests to the log API; it also stands in for a server outage (503) and
for an older server that ignores ?search=.

The pages open in the session's shared Chromium (tests/support/browser.py, which `make test` makes sure is
installed). Screenshots go to test-artifacts/ (git-ignored). How fast lines arrive and a 100,000-line log
opens is measured in benchmarks/logs/viewer.py, not asserted here.
"""

import random
import re
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from deployments.logs import LogWriter
from deployments.models import Build, BuildLogLine, BuildState
from tests.support.factories import BuildFactory, VersionFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "pw-for-tests"  # tests.support.factories.UserFactory's
FINAL = {"succeeded": BuildState.SUCCEEDED, "failed": BuildState.FAILED, "cancelled": BuildState.CANCELLED}


# ---------------------------------------------------------------- a build's log, and the browser's requests for it


class BuildLog:
    """A real build and its log lines; `append` writes with the platform's LogWriter, as a runner does."""

    def __init__(self, build: Build):
        self.build = build
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.traffic: LogTraffic | None = None

    @property
    def url(self) -> str:
        return f"/builds/{self.build.pk}/"

    @property
    def api_path(self) -> str:
        return f"/api/v1/builds/{self.build.pk}/log/"

    @property
    def lines(self) -> list[str]:
        return list(BuildLogLine.objects.filter(build=self.build).order_by("seq").values_list("text", flat=True))

    def append(self, *texts):
        with self.lock:
            writer = LogWriter(BuildLogLine, self.build)
            for text in texts:
                writer.write(text)
            writer.flush()

    def finish(self, state="succeeded"):
        Build.objects.filter(pk=self.build.pk).update(state=FINAL[state], finished_at=timezone.now())

    def produce(self, texts, every, finish_state=None, burst=(1, 1)):
        """Append `texts` from a thread, `burst` lines at a time every `every` seconds."""
        texts = list(texts)

        def run():
            try:
                i = 0
                while i < len(texts):
                    if self._stop.wait(every):
                        return
                    k = random.randint(*burst)  # noqa: S311 - test data
                    self.append(*texts[i : i + k])
                    i += k
                if finish_state:
                    self.finish(finish_state)
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    # What the browser asked for (see LogTraffic).
    @property
    def requests(self):
        return self.traffic.requests

    @property
    def failing(self):
        return self.traffic.failing

    @failing.setter
    def failing(self, value):
        self.traffic.failing = value

    def queries(self, key=None):
        return self.traffic.queries(key)


class LogTraffic:
    """The page's requests to one log endpoint, seen through Playwright's routing.

    Routed requests are answered while Playwright runs, so tests wait with page.wait_for_timeout(), never
    time.sleep(). `failing` answers 503 as a restarting server would; `search=False` drops ?search= and
    ?errors= on the way, as an older server that ignores them would.
    """

    def __init__(self, page, api_path: str, *, search: bool = True):
        self.requests: list[tuple[float, dict, int]] = []  # (monotonic time, query, status)
        self.failing = False
        self.search = search
        self.lock = threading.Lock()
        page.route(re.compile(re.escape(api_path) + r"\?"), self.handle)

    def handle(self, route):
        url = urlsplit(route.request.url)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if self.failing:
            with self.lock:
                self.requests.append((time.monotonic(), query, 503))
            route.fulfill(status=503, json={"detail": "temporarily unavailable"})
            return
        with self.lock:
            self.requests.append((time.monotonic(), query, 200))
        if not self.search and ("search" in query or "errors" in query):
            kept = {k: v for k, v in query.items() if k not in ("search", "errors")}
            route.continue_(url=urlunsplit(url._replace(query=urlencode(kept))))
        else:
            route.continue_()

    def queries(self, key=None):
        with self.lock:
            return [q for _, q, _ in self.requests if key is None or key in q]


def store_lines(build: Build, texts) -> None:
    """Lines stored up front (a finished build's log), in a few large INSERTs."""
    rows = (BuildLogLine(build=build, seq=n, text=text) for n, text in enumerate(texts, start=1))
    with transaction.atomic():
        BuildLogLine.objects.bulk_create(rows, batch_size=10_000)
        Build.objects.filter(pk=build.pk).update(log_line_count=len(texts))


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def log_viewer_log(model):
    """Factory: a build of the team's model with these lines; `finished` gives it a final state."""
    made = []

    def make(lines=(), finished=False, state="building", search=True):
        final = FINAL.get(state) if finished else None
        build = BuildFactory(version=VersionFactory(model=model), state=final or BuildState.BUILDING)
        store_lines(build, list(lines))
        log = BuildLog(build)
        log.search = search
        made.append(log)
        return log

    yield make
    for log in made:
        log.stop()


@pytest.fixture
def browser_session(signed_in, viewer):
    """The team's viewer, signed in, in the session's shared Chromium (1280x800); fails the test on
    uncaught JavaScript errors."""
    session = signed_in(viewer.username, PASSWORD)
    session.page.set_default_timeout(10_000)
    return session


@pytest.fixture
def log_viewer_page(browser_session):
    return browser_session.page


@pytest.fixture
def log_viewer_site(browser_session):
    """Opens a log's build page, watching the page's requests to its log API, and the viewer's events."""
    browser_session.page.add_init_script(
        "window.__logViewerFinished = [];"
        "document.addEventListener('log-viewer:finished', (e) => window.__logViewerFinished.push(e.detail));"
    )

    class Site:
        def watch(self, log):
            if log.traffic is None:
                log.traffic = LogTraffic(browser_session.page, log.api_path, search=log.search)

        def page_url(self, log):
            self.watch(log)
            return browser_session.base_url + log.url

    return Site()


# ---------------------------------------------------------------- helpers

SEQS = "() => Array.from(document.querySelectorAll('.logv-line'), (el) => Number(el.dataset.seq))"
TEXTS = "() => Array.from(document.querySelectorAll('.logv-line .logv-tx'), (el) => el.textContent)"
LINE_COUNT = "() => document.querySelectorAll('.logv-line').length"
DISTANCE_FROM_BOTTOM = "(p) => p.scrollHeight - p.scrollTop - p.clientHeight"
CAP = "() => SlipwayLogViewer.defaults.maxLines"


def wait_status(page, prefix, timeout=10_000):
    page.wait_for_function(
        "(prefix) => (document.querySelector('[data-lv-status]').textContent || '').startsWith(prefix)",
        arg=prefix,
        timeout=timeout,
    )


def wait_for_line(page, seq, timeout=10_000):
    page.wait_for_selector(f'.logv-line[data-seq="{seq}"]', state="attached", timeout=timeout)


def first_and_last(page):
    seqs = page.evaluate(SEQS)
    return seqs[0], seqs[-1]


def in_view(page, seq):
    return page.evaluate(
        """(seq) => {
            const pane = document.querySelector('[data-lv-pane]').getBoundingClientRect();
            const el = document.querySelector(`.logv-line[data-seq="${seq}"]`);
            if (!el) return false;
            const r = el.getBoundingClientRect();
            return r.top >= pane.top - 1 && r.bottom <= pane.bottom + 1;
        }""",
        seq,
    )


def build_log(count=400, fail=True):
    """A realistic container build + rollout log with ANSI colours."""
    lines = [
        "\x1b[1mSlipway builder 0.9.2\x1b[0m · build #42 · iris 1.4.0 (onnx)",
        "\x1b[90m[10:41:02]\x1b[0m Resolving base image \x1b[36mpython:3.11-slim\x1b[0m",
        "#1 [internal] load build definition from Dockerfile",
        "#1 transferring dockerfile: 1.02kB \x1b[32mdone\x1b[0m",
        "#2 [internal] load metadata for docker.io/library/python:3.11-slim",
        "#3 [1/6] FROM docker.io/library/python:3.11-slim@sha256:5e9b1ac4a2c3d9e1f7a0b26c44e35f8e1f3c5e2f",
        "\x1b[34m#4 [2/6] RUN pip install --no-cache-dir -r requirements.txt\x1b[0m",
    ]
    packages = ["numpy", "onnxruntime", "fastapi", "uvicorn", "pydantic", "protobuf", "starlette", "anyio"]
    t = 3.2
    while len(lines) < count - 16:
        pkg = random.choice(packages)  # noqa: S311 - test data
        t += random.random() * 0.8  # noqa: S311
        lines.append(f"#4 {t:6.3f} Collecting {pkg}=={random.randint(1, 3)}.{random.randint(0, 40)}.0")  # noqa: S311
        if random.random() < 0.3:  # noqa: S311
            lines.append(f"#4 {t:6.3f}   Downloading {pkg}-1.0-cp311-manylinux_2_17_x86_64.whl (14.2 MB)")
        if random.random() < 0.05:  # noqa: S311
            lines.append(
                "\x1b[33mWARNING: Running pip as the 'root' user can result in broken permissions and conflicting "
                "behaviour with the system package manager. It is recommended to use a virtual environment.\x1b[0m"
            )
    lines += [
        f"#4 {t + 2:6.3f} Successfully installed anyio fastapi numpy onnxruntime protobuf pydantic starlette uvicorn",
        "#4 \x1b[32mDONE 41.8s\x1b[0m",
        "#5 [3/6] COPY model.onnx /srv/model/",
        "#6 exporting to image \x1b[32mdone\x1b[0m",
        "\x1b[32m✔\x1b[0m pushed registry.internal/vision/iris:1.4.0 (digest sha256:9f1c2d…)",
        "\x1b[90m[10:42:11]\x1b[0m Rolling out \x1b[1miris-1-4-0\x1b[0m to \x1b[36mstaging\x1b[0m (2 replicas)",
        "\x1b[90m[10:42:14]\x1b[0m pod iris-1-4-0-7c9f-x2kq: \x1b[33mContainerCreating\x1b[0m",
        "\x1b[90m[10:42:19]\x1b[0m pod iris-1-4-0-7c9f-x2kq: Running, waiting for readiness probe /v2/health/ready",
    ]
    if fail:
        lines += [
            "Traceback (most recent call last):",
            '  File "/srv/serve.py", line 42, in <module>',
            "    session = ort.InferenceSession(MODEL_PATH, providers=providers)",
            '  File "/usr/local/lib/python3.11/site-packages/onnxruntime/capi/session.py", line 419, in __init__',
            "    self._create_inference_session(providers, provider_options, disabled_optimizers)",
            "\x1b[31;1mRuntimeError: model.onnx: opset 21 is not supported by this onnxruntime (max 20)\x1b[0m",
            "\x1b[90m[10:42:23]\x1b[0m pod iris-1-4-0-7c9f-x2kq: \x1b[31mCrashLoopBackOff\x1b[0m (restarts: 3)",
            "\x1b[31mRollout failed:\x1b[0m readiness probe never passed within 120s",
        ]
    return lines


# ---------------------------------------------------------------- tests


def test_live_lines_arrive_once_in_order_and_polling_stops(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    log = log_viewer_log([f"boot {i}" for i in range(1, 6)])
    page.goto(log_viewer_site.page_url(log))
    wait_for_line(page, 5)
    wait_status(page, "Live · 5 lines")

    # New lines show up while the page is open (how soon: benchmarks/logs/viewer.py).
    for i in range(2):
        page.wait_for_timeout(1000 * (0.35 + 0.3 * i))
        log.append(f"marker {i}")
        page.wait_for_function(
            "(t) => Array.from(document.querySelectorAll('.logv-tx')).some((el) => el.textContent === t)",
            arg=f"marker {i}",
        )

    # A producer writes bursts of lines over a few seconds, then the build finishes.
    log.produce(
        [f"step {i}: compiling layer {i % 7}" for i in range(200)], every=0.1, burst=(1, 12), finish_state="succeeded"
    )
    wait_status(page, "Finished", timeout=15_000)
    expected = log.lines
    assert page.evaluate(SEQS) == list(range(1, len(expected) + 1))
    assert page.evaluate(TEXTS) == expected
    assert len(log.queries("after")) >= 5, "expected many polls"
    assert all(q.get("limit") for q in log.queries("after"))
    assert page.evaluate("() => window.__logViewerFinished") == [{"state": "succeeded", "lines": len(expected)}]
    assert page.text_content("[data-lv-status]") == f"Finished · {len(expected)} lines"

    # Once finished, the viewer stops asking.
    requests = len(log.requests)
    page.wait_for_timeout(1000 * 2.2)
    assert len(log.requests) == requests


def test_server_text_is_only_text_and_ansi_becomes_classes(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    raw = [
        "<script>window.pwned=1</script>",
        '<img src=x onerror="window.pwned=2"><b>not bold</b> &amp; &lt;',
        "\x1b[31mred text\x1b[0m and \x1b[1;32mbold green\x1b[0m done",
        "\x1b]0;window title\x07\x1b[2Kprogress \x1b[38;5;31mnot red\x1b[39m \x1b[91mbright\x1b[m end\x1b(B",
        "downloading 10%\rdownloading 55%\rdownloading 100%",
        "tab\there \x07é ✓ 🚀",  # no NUL: PostgreSQL cannot store one, and LogWriter drops it first
    ]
    shown = [
        raw[0],
        raw[1],
        "red text and bold green done",
        "progress not red bright end",
        "downloading 100%",
        "tab\there é ✓ 🚀",
    ]
    log = log_viewer_log(raw, finished=True, state="succeeded")
    page.goto(log_viewer_site.page_url(log))
    wait_status(page, "Finished · 6 lines")

    assert page.evaluate(TEXTS) == shown
    assert page.evaluate("() => window.pwned") is None
    assert page.locator(".logv-pane script, .logv-pane img, .logv-pane b").count() == 0
    pane_text = page.text_content("[data-lv-pane]")
    assert "\x1b" not in pane_text and "[31m" not in pane_text and "\x07" not in pane_text

    red = page.locator('.logv-line[data-seq="3"] .ansi-red')
    assert red.text_content() == "red text"
    assert page.locator('.logv-line[data-seq="3"] .ansi-green.ansi-bold').text_content() == "bold green"
    assert page.locator('.logv-line[data-seq="4"] .ansi-red').count() == 0  # 38;5;31 is not "31"
    assert page.locator('.logv-line[data-seq="4"] .ansi-bright-red').text_content() == "bright"
    assert page.evaluate("() => getComputedStyle(document.querySelector('.ansi-red')).color") == "rgb(255, 123, 114)"

    # Line numbers are drawn in the gutter but are not text: a copied selection holds only the log.
    assert page.locator(".logv-ln").first.text_content() == ""
    assert page.evaluate("() => getComputedStyle(document.querySelector('.logv-ln'), '::before').content") == '"1"'
    copied = page.evaluate(
        """() => {
            const range = document.createRange();
            range.selectNodeContents(document.querySelector('[data-lv-lines]'));
            const sel = getSelection(); sel.removeAllRanges(); sel.addRange(range);
            return sel.toString();
        }"""
    )
    assert copied.strip("\n").split("\n")[:3] == shown[:3]


def test_starts_after_htmx_swaps_and_stops_when_swapped_out(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    first = log_viewer_log(["the page's own log"], finished=True, state="succeeded")
    page.goto(log_viewer_site.page_url(first))
    wait_status(page, "Finished")

    # htmx brings in a second viewer (no htmx on this page: the event is what matters).
    second = log_viewer_log(["swapped-in log"], state="deploying")
    log_viewer_site.watch(second)
    markup = render_to_string(
        "_log_viewer.html", {"log_url": second.api_path, "download_url": "", "initial_state": "building"}
    )
    page.evaluate(
        """(html) => {
            const box = document.createElement("div");
            box.id = "swapped";
            box.innerHTML = html;  // trusted test markup
            document.querySelector("main").appendChild(box);
            box.dispatchEvent(new CustomEvent("htmx:afterSettle", { bubbles: true }));
        }""",
        markup,
    )
    page.wait_for_selector("#swapped .logv-line[data-seq='1']")
    assert page.evaluate("() => document.querySelectorAll('[data-log-viewer]').length") == 2
    assert page.locator("#swapped a[download]").count() == 0  # no download_url, no link
    second.append("second line")
    page.wait_for_selector("#swapped .logv-line[data-seq='2']")
    assert page.evaluate("() => SlipwayLogViewer.init().length") == 2  # idempotent

    # Swapped out again: it stops asking.
    page.evaluate("() => document.getElementById('swapped').remove()")
    page.wait_for_timeout(1000 * 1.3)
    requests = len(second.requests)
    page.wait_for_timeout(1000 * 1.5)
    assert len(second.requests) == requests


def test_huge_log_keeps_a_bounded_window_and_scrolls_back(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    total = 100_000
    log = log_viewer_log(
        [f"line {i}: compiling module_{i % 97}.py" for i in range(1, total + 1)], finished=True, state="succeeded"
    )
    page.goto(log_viewer_site.page_url(log))
    wait_for_line(page, total)
    cap = page.evaluate(CAP)
    assert page.evaluate(LINE_COUNT) <= cap
    assert first_and_last(page) == (total - 999, total)
    assert log.queries("tail")[0]["tail"] == "1000"
    wait_status(page, "Finished · 100,000 lines")

    # Scrolling to the top fetches the lines before, and keeps the line that was on screen where it was.
    pane = page.locator("[data-lv-pane]")
    first = total - 999
    for _ in range(6):
        where = pane.evaluate(
            """(p, seq) => { p.scrollTop = 0;
                 return document.querySelector(`.logv-line[data-seq="${seq}"]`).getBoundingClientRect().top; }""",
            first,
        )
        page.wait_for_function("(seq) => Number(document.querySelector('.logv-line').dataset.seq) < seq", arg=first)
        page.wait_for_timeout(50)
        after = page.evaluate(
            '(seq) => document.querySelector(`.logv-line[data-seq="${seq}"]`).getBoundingClientRect().top', first
        )
        assert abs(after - where) <= 2, (where, after)
        assert page.evaluate(LINE_COUNT) <= cap
        first = first_and_last(page)[0]
        seqs = page.evaluate(SEQS)
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
    assert first == total - 999 - 6 * 500
    assert first_and_last(page)[1] < total  # the far end was trimmed
    assert page.get_attribute("[data-lv-follow]", "aria-pressed") == "false"
    assert page.locator("[data-lv-later]").is_visible()
    assert all("before" in q and q["limit"] == "500" for q in log.queries("before"))

    # "Newest" brings back the end of the log and follows it.
    page.click("[data-lv-newest]")
    wait_for_line(page, total)
    assert page.get_attribute("[data-lv-follow]", "aria-pressed") == "true"
    assert page.evaluate(LINE_COUNT) <= cap
    page.wait_for_function(f"() => ({DISTANCE_FROM_BOTTOM})(document.querySelector('[data-lv-pane]')) < 4")


def test_follow_sticks_to_the_bottom_until_the_user_scrolls_up(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    log = log_viewer_log([f"warm-up line {i}" for i in range(1, 201)])
    log.produce([f"streamed line {i}" for i in range(400)], every=0.2, burst=(3, 6))
    page.goto(log_viewer_site.page_url(log))
    wait_for_line(page, 200)
    pane = page.locator("[data-lv-pane]")
    follow = page.locator("[data-lv-follow]")
    assert follow.get_attribute("aria-pressed") == "true"

    for _ in range(2):
        last = first_and_last(page)[1]
        page.wait_for_function("(seq) => document.querySelectorAll('.logv-line').length > seq", arg=last)
        page.wait_for_timeout(50)
        assert pane.evaluate(DISTANCE_FROM_BOTTOM) < 4

    # The user scrolls up with the wheel: following stops and new lines don't move the view.
    box = pane.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -500)
    page.wait_for_function("() => document.querySelector('[data-lv-follow]').getAttribute('aria-pressed') === 'false'")
    page.wait_for_timeout(100)
    top = pane.evaluate("(p) => p.scrollTop")
    last = first_and_last(page)[1]
    page.wait_for_function("(seq) => document.querySelectorAll('.logv-line').length > seq + 5", arg=last)
    assert abs(pane.evaluate("(p) => p.scrollTop") - top) <= 1
    assert pane.evaluate(DISTANCE_FROM_BOTTOM) > 300
    assert page.locator("[data-lv-newest]").is_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "log-viewer-desktop-scrolled-up.png"))

    # "Newest" follows again; so does the toggle.
    page.click("[data-lv-newest]")
    assert follow.get_attribute("aria-pressed") == "true"
    assert pane.evaluate(DISTANCE_FROM_BOTTOM) < 4
    assert page.locator("[data-lv-newest]").is_hidden()
    follow.click()
    assert follow.get_attribute("aria-pressed") == "false"
    follow.focus()
    page.keyboard.press("Enter")  # keyboard works too
    assert follow.get_attribute("aria-pressed") == "true"
    last = first_and_last(page)[1]
    page.wait_for_function("(seq) => document.querySelectorAll('.logv-line').length > seq", arg=last)
    page.wait_for_timeout(50)
    assert pane.evaluate(DISTANCE_FROM_BOTTOM) < 4


def test_search_highlights_counts_and_cycles(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    lines = [f"plain line {i}" for i in range(1, 81)]
    for seq, text in {
        5: "alpha one",
        12: "x ALPHA two",
        33: "Alpha and alpha",
        47: "\x1b[32malp\x1b[0mha coloured",
        70: "last alpha",
    }.items():
        lines[seq - 1] = text
    log = log_viewer_log(lines, finished=True, state="succeeded")
    page.goto(log_viewer_site.page_url(log))
    wait_status(page, "Finished")
    box = page.get_by_role("searchbox", name="Search the log")
    count = page.locator("[data-lv-count]")

    box.fill("alpha")
    page.wait_for_function("() => document.querySelector('[data-lv-count]').textContent.endsWith('/6')")
    assert page.locator("mark.logv-hit").count() == 7  # the coloured match is split over two <mark>s
    assert page.locator(".logv-line:has(mark.logv-hit)").count() == 5

    def current():
        text = count.text_content()
        seq = page.evaluate(
            "() => Number(document.querySelector('.logv-hit--current').closest('.logv-line').dataset.seq)"
        )
        return int(text.split("/")[0]), seq

    order = [5, 12, 33, 33, 47, 70]
    index, seq = current()
    assert seq == order[index - 1]
    box.press("Enter")
    assert current() == (index % 6 + 1, order[index % 6])
    assert in_view(page, order[index % 6])
    box.press("Shift+Enter")
    box.press("Shift+Enter")
    expected = (index - 2) % 6 + 1
    assert current() == (expected, order[expected - 1])
    page.click("[data-lv-next]")
    assert current()[0] == (expected % 6) + 1

    box.fill("zzz")
    page.wait_for_function("() => document.querySelector('[data-lv-count]').textContent === '0/0'")
    assert page.locator("mark.logv-hit").count() == 0
    box.fill("alpha")
    page.wait_for_function("() => document.querySelector('[data-lv-count]').textContent.endsWith('/6')")
    box.press("Escape")
    assert count.text_content() == ""
    assert page.locator("mark.logv-hit").count() == 0
    assert page.evaluate(TEXTS)[46] == "alpha coloured"


def test_jump_to_first_error_asks_the_server_for_lines_outside_the_window(
    log_viewer_page, log_viewer_site, log_viewer_log
):
    page = log_viewer_page
    lines = [f"line {i}: ok" for i in range(1, 100_001)]
    lines[499] = "ERROR: disk quota exceeded while writing layer 3"
    lines[99_899] = "RuntimeError: this one is later"
    log = log_viewer_log(lines, finished=True, state="failed")
    page.goto(log_viewer_site.page_url(log))
    wait_status(page, "Failed · 100,000 lines")
    assert page.locator('.logv-line[data-seq="99900"]').get_attribute("class") == "logv-line logv-line--error"

    page.click("[data-lv-error]")
    page.wait_for_selector('.logv-line--target[data-seq="500"]')
    page.wait_for_timeout(100)
    assert in_view(page, 500)
    assert page.get_attribute("[data-lv-follow]", "aria-pressed") == "false"
    assert [q["errors"] for q in log.queries("errors")] == ["1"]  # one question: the first error line
    assert page.evaluate(LINE_COUNT) <= page.evaluate(CAP)


def test_jump_to_first_error_without_server_search(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    # The whole log is loaded: the first error is found among the loaded lines, no server search needed.
    lines = [f"line {i}" for i in range(1, 301)]
    lines[39] = "Build failed: exit status 2"
    lines[199] = "Traceback (most recent call last):"
    small = log_viewer_log(lines, finished=True, state="failed", search=False)
    page.goto(log_viewer_site.page_url(small))
    wait_status(page, "Failed · 300 lines")  # the page says "Failed" before the lines arrive
    page.get_by_role("button", name="Jump to first error").click()
    page.wait_for_selector('.logv-line--target[data-seq="40"]')
    page.wait_for_timeout(100)
    assert in_view(page, 40)
    assert small.queries("errors") == []

    # A huge log on a server that ignores ?search=: the viewer notices and falls back to the loaded lines.
    lines = [f"line {i}" for i in range(1, 100_001)]
    lines[499] = "error far away"
    lines[99_949] = "Exception: in the loaded window"
    huge = log_viewer_log(lines, finished=True, state="failed", search=False)
    page.goto(log_viewer_site.page_url(huge))
    wait_status(page, "Failed · 100,000 lines")
    page.click("[data-lv-error]")
    page.wait_for_selector('.logv-line--target[data-seq="99950"]')
    page.wait_for_timeout(100)
    assert in_view(page, 99950)
    assert huge.queries("errors")


def test_a_readiness_wait_is_not_an_error_and_the_jump_skips_it(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    lines = [f"line {i}" for i in range(1, 2001)]
    lines[9] = "Waiting for vision-iris-dev-1: no answer yet (ConnectionError)"
    lines[10] = "Waiting for vision-iris-dev-1: answered 503: model failed to load: UnpicklingError"
    lines[1499] = "0 errors, 0 warnings"
    log = log_viewer_log(lines, finished=True, state="failed")
    page.goto(log_viewer_site.page_url(log))
    wait_status(page, "Failed · 2,000 lines")
    page.click("[data-lv-error]")
    page.wait_for_selector('.logv-line--target[data-seq="11"]')
    assert page.locator('.logv-line[data-seq="10"]').get_attribute("class") == "logv-line"
    assert page.locator(".logv-line--error").count() == 1


def test_reconnects_with_backoff_after_errors(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    log = log_viewer_log(["first"])
    page.goto(log_viewer_site.page_url(log))
    wait_for_line(page, 1)
    conn = page.locator("[data-lv-conn]")
    assert conn.is_hidden()

    log.failing = True
    page.wait_for_selector("[data-lv-conn]", state="visible", timeout=3000)
    assert conn.text_content() == "Reconnecting…"
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and len([r for r in list(log.requests) if r[2] == 503]) < 2:
        page.wait_for_timeout(1000 * 0.02)
    log.failing = False
    log.append("after the outage")
    wait_for_line(page, 2, timeout=6000)
    page.wait_for_selector("[data-lv-conn]", state="hidden")
    with log.traffic.lock:
        times = [t for t, _, status in log.requests]
        statuses = [status for t, _, status in log.requests]
    first_failure = statuses.index(503)
    assert statuses[first_failure : first_failure + 3] == [503, 503, 200]
    t0, t1, t2 = times[first_failure : first_failure + 3]
    assert t1 - t0 >= 0.8 and t2 - t1 >= 1.6, (t1 - t0, t2 - t1)  # 1 s, then 2 s: the wait doubles


def test_screenshots(log_viewer_page, log_viewer_site, log_viewer_log):
    """Desktop and phone screenshots for a person to look at (test-artifacts/log-viewer-*.png)."""
    page = log_viewer_page
    ARTIFACTS.mkdir(exist_ok=True)
    random.seed(7)
    lines = build_log(420)
    log = log_viewer_log(lines[:-14], state="rolling out")
    log.produce(lines[-14:], every=0.05, finish_state="failed")
    page.goto(log_viewer_site.page_url(log))
    wait_status(page, "Failed")
    page.wait_for_timeout(150)
    page.screenshot(path=str(ARTIFACTS / "log-viewer-desktop.png"))

    page.get_by_role("searchbox", name="Search the log").fill("onnxruntime")
    page.wait_for_function("() => document.querySelector('[data-lv-count]').textContent.includes('/')")
    page.click("[data-lv-error]")
    page.wait_for_selector(".logv-line--target")
    page.wait_for_timeout(150)
    page.screenshot(path=str(ARTIFACTS / "log-viewer-desktop-search.png"))

    live = log_viewer_log(build_log(300, fail=False))
    live.produce([f"\x1b[90m[10:43:{i:02d}]\x1b[0m readiness probe ok ({i}/60)" for i in range(60)], every=0.3)
    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(log_viewer_site.page_url(live))
    wait_status(page, "Live")
    page.wait_for_timeout(1200)
    page.screenshot(path=str(ARTIFACTS / "log-viewer-phone.png"))
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
