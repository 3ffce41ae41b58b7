"""Many users at once: 50 simulated users for 60 s with Locust, against `make run`'s shape and the production shape.

    .venv/bin/python benchmarks/load/run.py [--shape make-run|production|both] [--users 50] [--seconds 60]

- make-run: SQLite, gunicorn with 2 workers of 8 threads and a Celery worker, as platform/scripts/run.sh
  starts them;
- production: PostgreSQL (database slipway_load, recreated), gunicorn with 2 workers of 8 threads (the
  image's entrypoint) and a Celery worker.

seed.py writes the data; locustfile.py says what the users do. Before and after the run, every
endpoint's statements are counted for one request (Django's test client, in this process, on the same
database): the data grows during the run (uploads, approvals, audit rows), and a count that grows
with it is reported. Prints, per shape, one line per endpoint (requests, failures, p50, p95, p99) and
the verdict against the targets: 0 errors, p99 at most 500 ms, no statement-count growth. Locust is
installed on first use into var/bench/locust-venv, never into the project's virtualenv. Traffic stays
on 127.0.0.1 and everything started stops when the script ends.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOCUST_VENV = ROOT / "var" / "bench" / "locust-venv"
LOCUST_VERSION = "2.47.0"
P99_TARGET_MS = 500


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_locust() -> Path:
    marker = LOCUST_VENV / "installed.txt"
    if not (marker.is_file() and marker.read_text() == LOCUST_VERSION):
        print(f"Installing locust=={LOCUST_VERSION} into {LOCUST_VENV.relative_to(ROOT)} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(LOCUST_VENV)], check=True)
        pip = [str(LOCUST_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, f"locust=={LOCUST_VERSION}"], check=True)
        marker.write_text(LOCUST_VERSION)
    return LOCUST_VENV / "bin" / "locust"


def shape_env(shape: str, work: Path) -> dict[str, str]:
    if shape == "production":
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "slipway_load" WITH (FORCE)')
            conn.execute('CREATE DATABASE "slipway_load"')
        database = "postgres://postgres@127.0.0.1:5432/slipway_load"
    else:
        database = f"sqlite:///{work / 'slipway.sqlite3'}"
    (work / "metrics").mkdir()
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database,
        "REDIS_URL": os.environ.get("SLIPWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "SLIPWAY_SECRET_KEY": secrets.token_urlsafe(50),
        "SLIPWAY_VAR_DIR": str(work / "var"),
        "SLIPWAY_MEDIA_ROOT": str(work / "media"),
        "SLIPWAY_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
    }


@contextlib.contextmanager
def platform_running(env: dict[str, str], work: Path) -> Iterator[str]:
    port = free_port()
    bin_dir = Path(sys.executable).parent
    web = ["config.wsgi", "--config", "platform/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    commands = [
        [str(bin_dir / "gunicorn"), *web, "--workers", "2", "--threads", "8"],
        [str(bin_dir / "celery"), "-A", "config", "worker", "--loglevel", "WARNING", "--concurrency", "2"],
    ]
    processes = []
    try:
        for n, command in enumerate(commands):
            with (work / f"process-{n}.log").open("wb") as log:
                processes.append(
                    subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
                )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            if time.monotonic() > deadline or processes[0].poll() is not None:
                raise SystemExit(f"the web server did not start; see {work / 'process-0.log'}")
            time.sleep(0.3)
        yield base
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def statement_counts(env: dict[str, str], fixture: Path) -> dict[str, int]:
    """Statements of one request per endpoint, in a child process on the shape's database."""
    answer = subprocess.run(
        [sys.executable, str(HERE / "statements.py"), str(fixture)],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(answer.stdout.strip().splitlines()[-1])


def run_shape(shape: str, args, locust: Path) -> list[str]:
    with tempfile.TemporaryDirectory(prefix=f"slipway-bench-load-{shape}-") as tmp:
        work = Path(tmp)
        env = shape_env(shape, work)
        fixture = work / "fixture.json"
        subprocess.run([sys.executable, str(HERE / "seed.py"), str(fixture)], env=env, cwd=ROOT, check=True)
        before = statement_counts(env, fixture)
        with platform_running(env, work) as base:
            load = ["--users", str(args.users), "--spawn-rate", str(args.users), "--run-time", f"{args.seconds}s"]
            output = ["--csv", str(work / "locust"), "--only-summary", "--loglevel", "WARNING"]
            subprocess.run(
                [str(locust), "-f", str(HERE / "locustfile.py"), "--headless", "--host", base, *load, *output],
                env={**os.environ, "SLIPWAY_LOAD_FIXTURE": str(fixture)},
                check=False,
                stdout=subprocess.DEVNULL,
            )
        after = statement_counts(env, fixture)
        return report(shape, args, work / "locust_stats.csv", before, after)


def report(shape: str, args, stats: Path, before: dict[str, int], after: dict[str, int]) -> list[str]:
    rows = list(csv.DictReader(stats.open()))
    lines = [
        f"### {shape}: {args.users} users for {args.seconds} s",
        "",
        "| endpoint | requests | failures | p50 | p95 | p99 |",
        "|---|---|---|---|---|---|",
    ]
    worst_p99, failures = 0.0, 0
    for row in rows:
        name = "**all**" if row["Name"] == "Aggregated" else f"{row['Type']} {row['Name']}"
        p50, p95, p99 = (float(row[k] or 0) for k in ("50%", "95%", "99%"))
        lines.append(
            f"| {name} | {row['Request Count']} | {row['Failure Count']} | {p50:.0f} ms | {p95:.0f} ms | {p99:.0f} ms |"
        )
        if row["Name"] != "Aggregated":
            worst_p99 = max(worst_p99, p99)
            failures += int(row["Failure Count"])
    lines += ["", "| endpoint | statements before the run | after |", "|---|---|---|"]
    grown = []
    for endpoint, count in before.items():
        lines.append(f"| {endpoint} | {count} | {after.get(endpoint)} |")
        if after.get(endpoint, count) > count:
            grown.append(endpoint)
    verdict = (
        f"errors: {failures} (target 0); worst endpoint p99: {worst_p99:.0f} ms (target {P99_TARGET_MS} ms); "
        f"statement counts grown with the data: {', '.join(grown) or 'none'}"
    )
    met = failures == 0 and worst_p99 <= P99_TARGET_MS and not grown
    return [*lines, "", f"{verdict}: **{'met' if met else 'NOT met'}**", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["make-run", "production", "both"], default="both")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    locust = ensure_locust()
    shapes = ["make-run", "production"] if args.shape == "both" else [args.shape]
    out = [f"## Load: {args.users} users, {args.seconds} s, {os.cpu_count()} cores", ""]
    for shape in shapes:
        out += run_shape(shape, args, locust)
    print("\n".join(out))


if __name__ == "__main__":
    main()
