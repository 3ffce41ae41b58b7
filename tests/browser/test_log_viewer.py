"""The live log viewer in a real browser: templates/_log_viewer.html, static/js/logviewer.js, static/css/logviewer.css.

A tiny http.server (127.0.0.1, random port) serves the repo's static/ folder, a page with the real template
rendered by Django's template engine standalone, and a fake log endpoint that follows the JSON contract
(?tail= / ?after=&limit= / ?before=&limit= / ?search=&after=&limit=) over an in-memory list of lines.

The pages open in the session's shared Chromium (the `chromium` fixture of tests/support/browser.py, which
`make test` makes sure is installed); no database is involved.
Screenshots go to test-artifacts/ (git-ignored).
"""

import json
import mimetypes
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django import template
from django.template import Context, Engine

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
STATIC = REPO / "static"
TEMPLATES = REPO / "templates"
ARTIFACTS = REPO / "test-artifacts"

# `{% load static %}` in the partial resolves to this library: the real one needs Django settings.
register = template.Library()


@register.simple_tag(name="static")
def static_url(path):
    return "/static/" + path


def render_viewer(**context):
    engine = Engine(dirs=[str(TEMPLATES)], libraries={"static": __name__})
    include = (
        '{% include "_log_viewer.html" with log_url=log_url download_url=download_url '
        "initial_state=initial_state log_label=log_label %}"
    )
    return engine.from_string(include).render(Context(context))


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Build #42 · Slipway</title>
<link rel="stylesheet" href="/static/css/slipway.css">
<script>
  window.__logViewerFinished = [];
  document.addEventListener("log-viewer:finished", (e) => window.__logViewerFinished.push(e.detail));
</script>
</head>
<body>
<header class="topbar"><div class="topbar-inner">
  <a class="brand" href="#"><span class="brand-mark" aria-hidden="true"></span>Slipway</a>
  <nav class="nav" aria-label="Main"><a class="active" href="#">Models</a><a href="#">Teams</a>
  <a href="#">API tokens</a><a href="#">API docs</a></nav>
</div></header>
<main id="content">
  <div class="page-header"><div>
    <div class="breadcrumbs"><a href="#">Models</a> / <a href="#">iris</a> / Builds</div>
    <h1>Build #42</h1>
    <p class="subtitle">iris 1.4.0 · image registry.internal/vision/iris</p>
  </div></div>
  {viewer}
</main>
</body>
</html>"""


# ---------------------------------------------------------------- the fake log endpoint


class FakeLog:
    """An in-memory log answering the viewer's JSON contract; `search=False` plays a server without ?search=."""

    def __init__(self, name, lines=(), finished=False, state="building", search=True):
        self.name = name
        self.lines = list(lines)
        self.finished = finished
        self.state = state
        self.search = search
        self.failing = False
        self.requests = []  # (monotonic time, query dict, status)
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []

    def append(self, *texts):
        with self.lock:
            self.lines.extend(texts)

    def finish(self, state="succeeded"):
        with self.lock:
            self.finished = True
            self.state = state

    def produce(self, texts, every, finish_state=None, burst=(1, 1)):
        """Append `texts` from a thread, `burst` lines at a time every `every` seconds."""
        texts = list(texts)

        def run():
            i = 0
            while i < len(texts):
                if self._stop.wait(every):
                    return
                k = random.randint(*burst)  # noqa: S311 - test data
                self.append(*texts[i : i + k])
                i += k
            if finish_state:
                self.finish(finish_state)

        thread = threading.Thread(target=run, daemon=True)
        self._threads.append(thread)
        thread.start()
        return thread

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)

    def queries(self, key=None):
        with self.lock:
            return [q for _, q, _ in self.requests if key is None or key in q]

    def answer(self, query):
        with self.lock:
            if self.failing:
                self.requests.append((time.monotonic(), query, 503))
                return 503, {"detail": "temporarily unavailable"}
            self.requests.append((time.monotonic(), query, 200))
            lines, n = self.lines, len(self.lines)
            limit = max(1, min(int(query.get("limit", 1000)), 5000))
            complete = False
            if "tail" in query:
                seqs = range(max(0, n - int(query["tail"])) + 1, n + 1)
                complete = True
            elif "before" in query:
                end = min(int(query["before"]) - 1, n)
                seqs = range(max(1, end - limit + 1), end + 1)
            elif "search" in query and self.search:
                term = query["search"].lower()
                seqs = []
                for seq in range(int(query.get("after", 0)) + 1, n + 1):
                    if term in lines[seq - 1].lower():
                        seqs.append(seq)
                        if len(seqs) == limit:
                            break
            else:
                after = int(query.get("after", 0))
                end = min(n, after + limit)
                seqs = range(after + 1, end + 1)
                complete = end >= n
            out = [{"seq": s, "text": lines[s - 1]} for s in seqs]
            next_after = out[-1]["seq"] if out else int(query.get("after", 0))
            return 200, {
                "lines": out,
                "next_after": next_after,
                "finished": self.finished and complete,
                "state": self.state,
            }


class LogViewerSite:
    def __init__(self):
        self.logs = {}
        self.base = ""

    def add(self, log):
        self.logs[log.name] = log
        return log

    def page_url(self, log):
        return f"{self.base}/viewer/{log.name}"

    def page_html(self, log):
        viewer = render_viewer(
            log_url=f"/logs/{log.name}",
            download_url=f"/logs/{log.name}/download",
            initial_state=log.state,
            log_label="Build log",
        )
        return PAGE.replace("{viewer}", viewer)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        site = self.server.site
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if path.startswith("/static/"):
            file = (STATIC / path.removeprefix("/static/")).resolve()
            if not file.is_relative_to(STATIC) or not file.is_file():
                return self.send(404, b"not found", "text/plain")
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            return self.send(200, file.read_bytes(), kind + "; charset=utf-8")
        if path.startswith("/viewer/") and path.removeprefix("/viewer/") in site.logs:
            log = site.logs[path.removeprefix("/viewer/")]
            return self.send(200, site.page_html(log).encode(), "text/html; charset=utf-8")
        if path.startswith("/logs/"):
            name, _, rest = path.removeprefix("/logs/").partition("/")
            log = site.logs.get(name)
            if log is None:
                return self.send(404, b"{}", "application/json")
            if rest == "download":
                with log.lock:
                    body = "\n".join(log.lines).encode()
                return self.send(200, body, "text/plain; charset=utf-8")
            status, payload = log.answer(query)
            return self.send(status, json.dumps(payload).encode(), "application/json")
        return self.send(404, b"not found", "text/plain")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def log_viewer_site():
    site = LogViewerSite()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.site = site
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    yield site
    for log in site.logs.values():
        log.stop()
    server.shutdown()
    server.server_close()


@pytest.fixture
def log_viewer_log(log_viewer_site, request):
    """Factory: a FakeLog served by the site under a name unique to the test; producers stop afterwards."""
    made = []

    def make(lines=(), **kwargs):
        log = log_viewer_site.add(FakeLog(f"{request.node.name}-{len(made)}", lines, **kwargs))
        made.append(log)
        return log

    yield make
    for log in made:
        log.stop()


@pytest.fixture
def log_viewer_page(chromium):
    """A Chromium page at 1280x800 (in the session's shared browser); fails the test on uncaught
    JavaScript errors."""
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        assert not errors, errors
    finally:
        context.close()


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

    # New lines show up within about a second of being written.
    for i in range(2):
        time.sleep(0.35 + 0.3 * i)
        started = time.monotonic()
        log.append(f"marker {i}")
        page.wait_for_function(
            "(t) => Array.from(document.querySelectorAll('.logv-tx')).some((el) => el.textContent === t)",
            arg=f"marker {i}",
            timeout=3000,
        )
        assert time.monotonic() - started < 1.5

    # A producer writes bursts of lines over a few seconds, then the build finishes.
    log.produce(
        [f"step {i}: compiling layer {i % 7}" for i in range(200)], every=0.1, burst=(1, 12), finish_state="succeeded"
    )
    wait_status(page, "Finished", timeout=15_000)
    with log.lock:
        expected = list(log.lines)
    assert page.evaluate(SEQS) == list(range(1, len(expected) + 1))
    assert page.evaluate(TEXTS) == expected
    assert len(log.queries("after")) >= 5, "expected many polls"
    assert all(q.get("limit") for q in log.queries("after"))
    assert page.evaluate("() => window.__logViewerFinished") == [{"state": "succeeded", "lines": len(expected)}]
    assert page.text_content("[data-lv-status]") == f"Finished · {len(expected)} lines"

    # Once finished, the viewer stops asking.
    requests = len(log.requests)
    time.sleep(2.2)
    assert len(log.requests) == requests


def test_server_text_is_only_text_and_ansi_becomes_classes(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    raw = [
        "<script>window.pwned=1</script>",
        '<img src=x onerror="window.pwned=2"><b>not bold</b> &amp; &lt;',
        "\x1b[31mred text\x1b[0m and \x1b[1;32mbold green\x1b[0m done",
        "\x1b]0;window title\x07\x1b[2Kprogress \x1b[38;5;31mnot red\x1b[39m \x1b[91mbright\x1b[m end\x1b(B",
        "downloading 10%\rdownloading 55%\rdownloading 100%",
        "tab\there \x00\x07é ✓ 🚀",
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
    markup = render_viewer(log_url=f"/logs/{second.name}", download_url="", initial_state="deploying", log_label="")
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
    time.sleep(1.3)
    requests = len(second.requests)
    time.sleep(1.5)
    assert len(second.requests) == requests


def test_huge_log_keeps_a_bounded_window_and_scrolls_back(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    total = 100_000
    log = log_viewer_log(
        [f"line {i}: compiling module_{i % 97}.py" for i in range(1, total + 1)], finished=True, state="succeeded"
    )
    started = time.monotonic()
    page.goto(log_viewer_site.page_url(log))
    wait_for_line(page, total)
    load_seconds = time.monotonic() - started
    cap = page.evaluate(CAP)
    assert page.evaluate(LINE_COUNT) <= cap
    assert first_and_last(page) == (total - 999, total)
    assert load_seconds < 5
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
    assert {q["search"] for q in log.queries("search")} == {"error", "failed", "traceback", "exception"}
    assert page.evaluate(LINE_COUNT) <= page.evaluate(CAP)


def test_jump_to_first_error_without_server_search(log_viewer_page, log_viewer_site, log_viewer_log):
    page = log_viewer_page
    # The whole log is loaded: the first error is found among the loaded lines, no server search needed.
    lines = [f"line {i}" for i in range(1, 301)]
    lines[39] = "Build failed: exit status 2"
    lines[199] = "Traceback (most recent call last):"
    small = log_viewer_log(lines, finished=True, state="failed", search=False)
    page.goto(log_viewer_site.page_url(small))
    wait_status(page, "Failed")
    page.get_by_role("button", name="Jump to first error").click()
    page.wait_for_selector('.logv-line--target[data-seq="40"]')
    page.wait_for_timeout(100)
    assert in_view(page, 40)
    assert small.queries("search") == []

    # A huge log on a server that ignores ?search=: the viewer notices and falls back to the loaded lines.
    lines = [f"line {i}" for i in range(1, 100_001)]
    lines[499] = "error far away"
    lines[99_949] = "Exception: in the loaded window"
    huge = log_viewer_log(lines, finished=True, state="failed", search=False)
    page.goto(log_viewer_site.page_url(huge))
    wait_status(page, "Failed")
    page.click("[data-lv-error]")
    page.wait_for_selector('.logv-line--target[data-seq="99950"]')
    page.wait_for_timeout(100)
    assert in_view(page, 99950)
    assert huge.queries("search")


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
        time.sleep(0.02)
    log.failing = False
    log.append("after the outage")
    wait_for_line(page, 2, timeout=6000)
    page.wait_for_selector("[data-lv-conn]", state="hidden")
    with log.lock:
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
