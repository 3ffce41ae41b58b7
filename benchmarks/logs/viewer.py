"""The log viewer in headless Chromium: how soon a new line shows, and how soon a 100,000-line log opens.

    .venv/bin/python benchmarks/logs/viewer.py

The platform runs with `manage.py runserver` on the benchmark database; the browser signs in as a viewer
and opens the build page (templates/_log_viewer.html, static/js/logviewer.js against the log API). New
lines are written with the platform's LogWriter, as a build runner writes them. Prints a Markdown table.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import LINES, PASSWORD, noisy_build
from _setup import ROOT, django_ready, percentile

CHROMIUM = os.environ.get("SLIPWAY_CHROMIUM", "/usr/bin/chromium")
OPENS = 5
NEW_LINES = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.test_settings"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("the benchmark server did not start")


def main() -> None:
    django_ready()
    from django.db import connection
    from playwright.sync_api import sync_playwright

    from deployments.logs import LogWriter
    from deployments.models import BuildLogLine

    user, huge = noisy_build()
    _, live = noisy_build(lines=10, name="live")
    connection.close()
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"  # ORM writes beside Playwright's event loop
    port = free_port()
    server = serve(port)
    base = f"http://127.0.0.1:{port}"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{base}/login/")
            page.fill("#id_username", user.username)
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/")

            opens = []
            for _ in range(OPENS):
                started = time.perf_counter()
                page.goto(f"{base}/builds/{huge.pk}/")
                page.wait_for_selector(f'.logv-line[data-seq="{LINES}"]', state="attached", timeout=60_000)
                opens.append(time.perf_counter() - started)

            page.goto(f"{base}/builds/{live.pk}/")
            page.wait_for_selector(".logv-line", state="attached")
            arrivals = []
            for n in range(NEW_LINES):
                page.wait_for_timeout(350 + 97 * n)  # not in step with the viewer's polls
                marker = f"marker {time.time_ns()}"
                started = time.perf_counter()
                writer = LogWriter(BuildLogLine, live)
                writer.write(marker)
                writer.flush()
                page.wait_for_function(
                    "(t) => Array.from(document.querySelectorAll('.logv-tx')).some((el) => el.textContent === t)",
                    arg=marker,
                    timeout=30_000,
                )
                arrivals.append(time.perf_counter() - started)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    print("## The log viewer in Chromium\n")
    print("| measure | p50 | p95 | max |\n|---|---|---|---|")
    print(
        f"| open a {LINES:,}-line log until its last line shows ({OPENS} opens) | {percentile(opens, 50):.2f} s "
        f"| {percentile(opens, 95):.2f} s | {max(opens):.2f} s |"
    )
    print(
        f"| a new line, from written to shown ({NEW_LINES} lines) | {percentile(arrivals, 50):.2f} s "
        f"| {percentile(arrivals, 95):.2f} s | {max(arrivals):.2f} s |"
    )
    met = max(opens) < 5 and max(arrivals) < 1.5
    verdict = "met" if met else "missed"
    print(f"\nTargets: a 100,000-line log opens within 5 s, a new line shows within 1.5 s: **{verdict}**.")


if __name__ == "__main__":
    main()
