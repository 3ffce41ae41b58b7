"""Many users at once: 50 simulated users for 60 s with Locust, against `make run`'s shape and the production shape.

    .venv/bin/python benchmarks/load/run.py [--shape make-run|production|both] [--users 50] [--seconds 60]

- make-run: SQLite, gunicorn with 2 workers of 8 threads and a Celery worker, as platform/scripts/run.sh
  starts them;
- production: PostgreSQL (database slipway_load, recreated), gunicorn with 2 workers of 8 threads and
  a Celery worker, started as the image's entrypoint starts them.

seed.py writes the data; locustfile.py says what the users do. Before the run, statements.py counts
every endpoint's statements for one request on the seeded data; after it, seed.py --grow triples
the data and they are counted again: a count that differs issues queries per row. Prints, per shape,
one line per endpoint (requests, failures, p50, p95, p99, statements per request at 1x and 3x), the
sign-ins apart (once per simulated person, at its start: their cost is the password hash), every
failure with its message, and the verdict against the targets: 0 errors, p99 at most 500 ms, no
statement-count growth. Locust is installed on first use into var/bench/locust-venv, never into the
project's virtualenv. Traffic stays on 127.0.0.1, every step has a time limit, and everything started
stops when the script ends. Redis: the database SLIPWAY_BENCH_REDIS_URL (or REDIS_URL) names, else db 14;
it is emptied at the end, so give it one of your own on a shared machine. The servers' logs stay in
var/bench/load/<shape>/ for reading afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOCUST_VENV = ROOT / "var" / "bench" / "locust-venv"
LOCUST_VERSION = "2.47.0"
P99_TARGET_MS = 500
SIGN_IN = "sign-in:"  # the locustfile's prefix for the sign-ins each simulated person does once
GROW = 2  # seed.py --grow 2: 3x the seeded rows when the statements are counted again
STEP_TIMEOUT = 900  # seconds for seeding or counting, far above what they take on a loaded machine


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


def redis_url() -> str:
    """The Redis database the platform under load uses, and which the script empties when it ends."""
    return os.environ.get("SLIPWAY_BENCH_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/14"


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
        "REDIS_URL": redis_url(),
        "SLIPWAY_SECRET_KEY": secrets.token_urlsafe(50),
        "SLIPWAY_VAR_DIR": str(work / "var"),
        "SLIPWAY_MEDIA_ROOT": str(work / "media"),
        "SLIPWAY_LOG_LEVEL": "WARNING",
        # Plain HTTP on loopback, as `make run` serves: Secure cookies would never come back.
        "SLIPWAY_SECURE_COOKIES": "false",
        "SLIPWAY_ALLOWED_HOSTS": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
    }


def group_cpu(group: int) -> float:
    """CPU seconds (user and system) of the live processes of a process group, their reaped children included."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[2]) == group:  # after the name: state, ppid, pgrp, ...
                total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def python_step(env: dict[str, str], *args: str) -> str:
    answer = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, check=False, capture_output=True, text=True, timeout=STEP_TIMEOUT
    )
    if answer.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{answer.stderr[-3000:]}{answer.stdout[-2000:]}")
    return answer.stdout


def statement_counts(env: dict[str, str], fixture: Path) -> dict[str, int]:
    """Statements of one request per endpoint, in a child process on the shape's database."""
    return json.loads(python_step(env, str(HERE / "statements.py"), str(fixture)).strip().splitlines()[-1])


@contextlib.contextmanager
def platform_running(env: dict[str, str], work: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """The web server and the worker, each a process group of its own; yields the address and the groups."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    web = ["config.wsgi", "--config", "platform/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    commands = {
        "web": [str(bin_dir / "gunicorn"), *web, "--workers", "2", "--threads", "8"],
        "worker": [str(bin_dir / "celery"), "-A", "config", "worker", "--loglevel", "WARNING", "--concurrency", "2"],
    }
    processes = []
    try:
        for name, command in commands.items():
            with (work / f"{name}.log").open("wb") as log:
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
                raise SystemExit(f"the web server did not start; see {work / 'web.log'}")
            time.sleep(0.3)
        yield base, {name: process.pid for name, process in zip(commands, processes, strict=True)}
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        redis.Redis.from_url(env["REDIS_URL"]).flushdb()


def run_locust(locust: Path, base: str, fixture: Path, work: Path, args) -> dict:
    """Runs the users; returns the locustfile's figures, with the seconds the users took to start (the
    sign-ins) before the measured time."""
    host = urlsplit(base).hostname or ""
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to send load to {host}: loopback only")
    # The locustfile stops Locust MEASURED seconds after the last user signed in; --run-time is the
    # outer bound (sign-ins wait for each other 180 s at most).
    load = ["--users", str(args.users), "--spawn-rate", str(args.users), "--run-time", f"{args.seconds + 240}s"]
    output = ["--only-summary", "--loglevel", "WARNING", "--stop-timeout", "10"]
    result = work / "result.json"
    environment = {
        **os.environ,
        "SLIPWAY_LOAD_FIXTURE": str(fixture),
        "SLIPWAY_LOAD_SECONDS": str(args.seconds),
        "SLIPWAY_LOAD_RESULT": str(result),
    }
    with (work / "locust.log").open("wb") as log:
        subprocess.run(
            [str(locust), "-f", str(HERE / "locustfile.py"), "--headless", "--host", base, *load, *output],
            env=environment,
            check=False,
            stdout=log,
            stderr=log,
            timeout=args.seconds + 360,
        )
    if not result.exists():
        raise SystemExit(f"Locust wrote no figures; see {work / 'locust.log'}")
    figures = json.loads(result.read_text())
    if figures["late"] or "ready_after" not in figures:
        raise SystemExit(f"not every simulated user started within the limit; see {work / 'locust.log'}")
    return figures


def run_shape(shape: str, args, locust: Path) -> list[str]:
    work = ROOT / "var" / "bench" / "load" / shape
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = shape_env(shape, work)
    fixture = work / "fixture.json"
    python_step(env, str(HERE / "seed.py"), str(fixture))
    before = statement_counts(env, fixture)
    started, load_before = datetime.now(UTC), os.getloadavg()
    with platform_running(env, work) as (base, groups):
        cpu = {name: group_cpu(group) for name, group in groups.items()}
        own = resource.getrusage(resource.RUSAGE_CHILDREN)
        clock = time.monotonic()
        figures = run_locust(locust, base, fixture, work, args)
        elapsed = time.monotonic() - clock
        cpu = {name: group_cpu(group) - cpu[name] for name, group in groups.items()}
        spent = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu["locust"] = spent.ru_utime + spent.ru_stime - own.ru_utime - own.ru_stime
    load_after = os.getloadavg()
    python_step(env, str(HERE / "seed.py"), str(fixture), "--grow", str(GROW))
    after = statement_counts(env, fixture)
    machine = f"load average {load_before[0]:.1f} at the start, {load_after[0]:.1f} at the end (1-minute)"
    header = f"### {shape}: {args.users} users for {args.seconds} s, {started:%Y-%m-%d %H:%M} UTC, {machine}"
    started_line = (
        f"All {args.users} users had started (the browsers signed in) {figures['ready_after']:.1f} s after Locust "
        f"began; then {args.seconds} s of load were measured."
    )
    return [header, "", started_line, "", *report(figures, before, after, cpu, elapsed)]


def report(
    figures: dict, before: dict[str, int], after: dict[str, int], cpu: dict[str, float], elapsed: float
) -> list[str]:
    rows = figures["endpoints"]
    table = [
        "| endpoint | requests | failures | p50 | p95 | p99 | statements 1x / 3x |",
        "|---|---|---|---|---|---|---|",
    ]
    sign_ins = ["| sign-in step (once per simulated person) | requests | failures | p50 | p95 | p99 | statements |"]
    sign_ins.append("|---|---|---|---|---|---|---|")
    worst_p99, worst, failures, requests_total = 0.0, "", 0, 0
    for row in rows:
        name = f"{row['method']} {row['name']}"
        counts = f"{before.get(name, '—')} / {after.get(name, '—')}"
        line = f"| {name} | {row['requests']} | {row['failures']} | {row['p50']:.0f} ms | {row['p95']:.0f} ms | "
        line += f"{row['p99']:.0f} ms | {counts} |"
        failures += row["failures"]
        if row["name"].startswith(SIGN_IN):
            sign_ins.append(line)
            continue
        table.append(line)
        requests_total += row["requests"]
        if row["p99"] > worst_p99:
            worst_p99, worst = row["p99"], name
    grown = [f"grown for {name} ({count} → {after[name]})" for name, count in before.items() if after[name] > count]
    errors = ["| failures | endpoint | error |", "|---|---|---|"]
    for error in figures["failures"]:
        errors.append(f"| {error['count']} | {error['method']} {error['name']} | {error['error'][:160]} |")
    for error in figures["exceptions"]:
        # An exception in a simulated user's own code (a body that was not what it expected): an error too.
        failures += error["count"]
        errors.append(f"| {error['count']} | (in the simulated user) | {error['error'][:160]} |")
    served = sum(row["requests"] for row in rows)
    cores = ", ".join(f"{name} {seconds / elapsed:.2f}" for name, seconds in cpu.items())
    usage = [
        f"CPU from Locust's start to its end ({elapsed:.0f} s, sign-ins included), in cores (CPU s per s; "
        f"the machine has "
        f"{os.cpu_count()}): {cores}. The web server's CPU per request: {cpu['web'] / max(served, 1) * 1000:.1f} ms "
        f"({served} requests, the sign-ins' password hashes included).",
        "",
    ]
    met = failures == 0 and worst_p99 <= P99_TARGET_MS and not grown
    verdict = [
        f"- errors: {failures} (target 0): **{'met' if failures == 0 else 'NOT met'}**",
        f"- worst p99: {worst_p99:.0f} ms, {worst} (target at most {P99_TARGET_MS} ms; sign-ins apart): "
        f"**{'met' if worst_p99 <= P99_TARGET_MS else 'NOT met'}**",
        f"- statements per request, 1x against 3x rows: {', '.join(grown) or 'no endpoint grew'}: "
        f"**{'met' if not grown else 'NOT met'}**",
        f"- all targets: **{'met' if met else 'NOT met'}** ({requests_total} requests under load)",
    ]
    return [*table, "", *sign_ins, "", *(errors if len(errors) > 2 else ["No failures."]), "", *usage, *verdict, ""]


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
