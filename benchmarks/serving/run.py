"""The model server inside every image against MLServer 1.7.1, same model, same machine, same run.

    .venv/bin/python benchmarks/serving/run.py [--seconds 5] [--rounds 3]

Both serve one iris LogisticRegression (the same joblib file) over OIP v2 REST on 127.0.0.1. For each,
in turn and for several rounds: start to ready (and the CPU time its processes used until then, which
a busy machine stretches less than the wall clock), requests/s and latency with 1 and with 8
keep-alive clients, then the memory of its processes (PSS, what a container's memory limit counts, and
the sum of RSS, which counts pages the processes share once per process). Then the conformance checks
of conformance.py. Prints a Markdown report with the medians of the rounds and the ratios, and
Slipway's start-up phases from its own log.

Each server runs from a virtualenv of its own under var/bench/ (never the project's), made on first use:
- Slipway as its image runs it: the project's scikit-learn version and what it depends on (an image of a
  scikit-learn model holds nothing else), the serving package copied beside the model and compiled as
  the image build does, PYTHONPATH and PYTHONDONTWRITEBYTECODE as the image sets them;
- MLServer: mlserver and mlserver-sklearn 1.7.1, uvloop 0.21.0 (newer ones crash its worker), and the
  same scikit-learn, so both sides unpickle the same model with the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import conformance  # noqa: E402 - the checks beside this script

MLSERVER_VENV = ROOT / "var" / "bench" / "mlserver-venv"
SLIPWAY_VENV = ROOT / "var" / "bench" / "slipway-venv"
MLSERVER_PACKAGES = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")
MODEL, VERSION = "iris", "1"
ROW = [5.1, 3.5, 1.4, 0.2]
CLIENTS = (1, 8)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the two servers ------------------------------------------------------------------------------


def ensure_venv(venv: Path, packages: tuple[str, ...]) -> Path:
    """A virtualenv holding `packages` (made again when the list changes); returns its bin folder."""
    import sklearn

    wanted = (*packages, f"scikit-learn=={sklearn.__version__}")
    marker = venv / "installed.txt"
    if marker.is_file() and marker.read_text() == "\n".join(wanted):
        return venv / "bin"
    print(f"Installing {', '.join(wanted)} into {venv.relative_to(ROOT)} ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *wanted], check=True)
    marker.write_text("\n".join(wanted))
    return venv / "bin"


def write_models(work: Path) -> Path:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    artifact = work / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), artifact)
    slipway = work / "slipway"
    slipway.mkdir()
    # The image's layout: /opt/slipway/serving beside /opt/slipway/model (its bytecode: see main()).
    shutil.copytree(ROOT / "serving", work / "runtime" / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    (slipway / "model.joblib").write_bytes(artifact.read_bytes())
    config = {"name": MODEL, "version": VERSION, "framework": "sklearn", "artifact": "model.joblib"}
    (slipway / "slipway.json").write_text(json.dumps(config))
    mlserver = work / "mlserver"
    mlserver.mkdir()
    (mlserver / "model.joblib").write_bytes(artifact.read_bytes())
    settings = {"name": MODEL, "implementation": "mlserver_sklearn.SKLearnModel"}
    settings["parameters"] = {"uri": "./model.joblib", "version": VERSION}
    (mlserver / "model-settings.json").write_text(json.dumps(settings))
    return work


def start_slipway(work: Path, port: int, venv_bin: Path, log: Path) -> subprocess.Popen[bytes]:
    runtime = work / "runtime"
    env = {**os.environ, "SLIPWAY_MODEL_DIR": str(work / "slipway"), "PORT": str(port), "SLIPWAY_HOST": "127.0.0.1"}
    env.update(PYTHONPATH=str(runtime), PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    command = [str(venv_bin / "python"), "-m", "serving"]
    with log.open("wb") as output:
        return subprocess.Popen(command, cwd=runtime, env=env, stdout=output, stderr=subprocess.STDOUT)


def slipway_phases(log: Path, started_at: float) -> dict[str, float]:
    """Seconds from the start to each of the server's start-up events, from its own log lines."""
    phases: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            event = json.loads(line)
            if event["event"] in ("listening", "model_loaded", "ready") and event["event"] not in phases:
                phases[event["event"]] = datetime.fromisoformat(event["ts"]).timestamp() - started_at
    return phases


def start_mlserver(work: Path, port: int, venv_bin: Path) -> subprocess.Popen[bytes]:
    folder = work / "mlserver"
    ports = {"host": "127.0.0.1", "http_port": port, "grpc_port": free_port(), "metrics_port": free_port()}
    (folder / "settings.json").write_text(json.dumps(ports))
    command = [str(venv_bin / "mlserver"), "start", str(folder)]
    return subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# --- measuring ------------------------------------------------------------------------------------


def wait_ready(process: subprocess.Popen[bytes], port: int, started: float, timeout: float = 60) -> float:
    session = requests.Session()
    session.trust_env = False
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before it was ready")
        try:
            if session.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return time.perf_counter() - started
        except requests.RequestException:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"not ready within {timeout} s")


def infer_request(port: int) -> bytes:
    body = json.dumps({"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", "data": [ROW]}]})
    head = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return (head + body).encode()


async def _client(port: int, request: bytes, until: float, latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while time.perf_counter() < until:
            sent = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().index(b"content-length:")
            await reader.readexactly(int(head[at + 15 : head.index(b"\r\n", at)]))
            latencies.append(time.perf_counter() - sent)
            if head[9:12] != b"200":
                errors.append(int(head[9:12]))
    finally:
        writer.close()


def load(port: int, clients: int, seconds: float) -> dict[str, float]:
    """`clients` keep-alive connections, each sending its next request as soon as it has the answer."""
    latencies: list[float] = []
    errors: list[int] = []

    async def run() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(*(_client(port, infer_request(port), until, latencies, errors) for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "errors": len(errors),
    }


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process and its descendants so far."""
    ticks = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> tuple[float, float]:
    """(PSS, RSS) summed over the process and its descendants, in MiB."""
    pss = rss = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "Pss":
                    pss += int(value.split()[0])
                elif name == "Rss":
                    rss += int(value.split()[0])
        except OSError:
            continue
    return pss / 1024, rss / 1024


def stop(process: subprocess.Popen[bytes]) -> None:
    tree = process_tree(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pid in tree[1:]:  # MLServer's workers, should one outlive its parent
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Side:
    name: str
    ready_s: list[float] = field(default_factory=list)
    ready_cpu_s: list[float] = field(default_factory=list)
    phases: list[dict[str, float]] = field(default_factory=list)
    load_average: list[float] = field(default_factory=list)
    loads: dict[int, list[dict[str, float]]] = field(default_factory=dict)
    pss: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    conformance: list[tuple[str, bool, str]] = field(default_factory=list)

    def median(self, clients: int, key: str) -> float:
        return statistics.median(run[key] for run in self.loads[clients])


def measure(side: Side, start: Callable[[int], subprocess.Popen[bytes]], seconds: float, check: bool) -> float:
    """Measures one start of a server; returns when it started (the epoch time, for its log)."""
    port = free_port()
    side.load_average.append(os.getloadavg()[0])
    started_at = time.time()
    began = time.perf_counter()
    process = start(port)
    try:
        side.ready_s.append(wait_ready(process, port, began))
        side.ready_cpu_s.append(cpu_seconds(process.pid))
        load(port, 1, 1.0)  # warm-up, not counted
        for clients in CLIENTS:
            side.loads.setdefault(clients, []).append(load(port, clients, seconds))
        pss, rss = memory_mib(process.pid)
        side.pss.append(pss)
        side.rss.append(rss)
        if check:
            side.conformance = conformance.run(f"http://127.0.0.1:{port}", MODEL, VERSION)
    finally:
        stop(process)
    return started_at


def report(slipway: Side, mlserver: Side, seconds: float, rounds: int) -> str:
    def row(label: str, ours: float, theirs: float, unit: str, better: str) -> str:
        ratio = ours / theirs if theirs else float("inf")
        digits = {"": 0, " ms": 2, " s": 2, " MiB": 0}[unit]
        return f"| {label} | {ours:,.{digits}f}{unit} | {theirs:,.{digits}f}{unit} | {ratio:.2f}x ({better}) |"

    med = statistics.median
    lines = [
        f"Serving benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}: {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {rounds} rounds of {seconds:g} s per load (medians shown)",
        "",
        "| measure | Slipway | MLServer 1.7.1 | Slipway / MLServer |",
        "|---|---|---|---|",
    ]
    for clients in CLIENTS:
        who = f"{clients} client{'s' if clients > 1 else ''}"
        ours, theirs = slipway.median, mlserver.median
        lines.append(row(f"requests/s, {who}", ours(clients, "rps"), theirs(clients, "rps"), "", "higher is better"))
        for key in ("p50", "p99"):
            ms = f"{key}_ms"
            lines.append(row(f"{key} latency, {who}", ours(clients, ms), theirs(clients, ms), " ms", "lower is better"))
    lines += [
        row("start to ready", med(slipway.ready_s), med(mlserver.ready_s), " s", "lower is better"),
        row("CPU time until ready", med(slipway.ready_cpu_s), med(mlserver.ready_cpu_s), " s", "lower is better"),
        row("memory (PSS, all processes)", med(slipway.pss), med(mlserver.pss), " MiB", "lower is better"),
        row("memory (sum of RSS)", med(slipway.rss), med(mlserver.rss), " MiB", "lower is better"),
    ]
    passed = [sum(ok for _, ok, _ in side.conformance) for side in (slipway, mlserver)]
    total = len(slipway.conformance)
    lines.append(f"| OIP v2 conformance checks passed | {passed[0]}/{total} | {passed[1]}/{total} | |")
    errors = [sum(run["errors"] for runs in side.loads.values() for run in runs) for side in (slipway, mlserver)]
    lines.append(f"| non-200 answers under load | {errors[0]:.0f} | {errors[1]:.0f} | |")
    lines += ["", "Conformance checks failed:"]
    for side in (slipway, mlserver):
        failed = [f"{name} ({why})" for name, ok, why in side.conformance if not ok]
        lines.append(f"- {side.name}: {'; '.join(failed) if failed else 'none'}")
    loads = slipway.load_average + mlserver.load_average
    lines += ["", f"Load average (1 min) at each start: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} CPUs."]
    lines += ["", "Slipway's start-up, from its log (each start; seconds since the process was started):", ""]
    lines += [
        "| start | load average | listening | model loaded | ready (logged) | ready (answered) | CPU until ready |"
    ]
    lines += ["|---|---|---|---|---|---|---|"]
    starts = zip(slipway.load_average, slipway.phases, slipway.ready_s, slipway.ready_cpu_s, strict=True)
    for number, (load_average, phases, ready, cpu) in enumerate(starts):
        cells = [f"{phases[name]:.2f} s" if name in phases else "-" for name in ("listening", "model_loaded", "ready")]
        lines.append(f"| {number + 1} | {load_average:.1f} | {' | '.join(cells)} | {ready:.2f} s | {cpu:.2f} s |")
    targets = [
        ("at least 3x MLServer's requests/s with 1 client", slipway.median(1, "rps") >= 3 * mlserver.median(1, "rps")),
        ("at least 2x with 8 clients", slipway.median(8, "rps") >= 2 * mlserver.median(8, "rps")),
        ("p99 with 8 clients no higher", slipway.median(8, "p99_ms") <= mlserver.median(8, "p99_ms")),
        ("ready within 1 s", med(slipway.ready_s) <= 1.0),
        ("at most 150 MiB (PSS)", med(slipway.pss) <= 150),
    ]
    lines += ["", "Targets: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in targets)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load phase")
    parser.add_argument("--rounds", type=int, default=3, help="each server is started and measured this often")
    args = parser.parse_args()
    mlserver_bin = ensure_venv(MLSERVER_VENV, MLSERVER_PACKAGES)
    slipway_bin = ensure_venv(SLIPWAY_VENV, ())
    with tempfile.TemporaryDirectory(prefix="slipway-serving-bench-") as folder:
        work = write_models(Path(folder))
        # As the image build does (Dockerfile.template), with the interpreter that will run it.
        compile_runtime = [str(slipway_bin / "python"), "-m", "compileall", "-q", str(work / "runtime" / "serving")]
        subprocess.run(compile_runtime, check=True)
        log = work / "slipway.log"
        slipway, mlserver = Side("Slipway"), Side("MLServer 1.7.1")
        for number in range(args.rounds):
            # Alternate who goes first, so neither always meets a warmer or a busier machine.
            order = [(slipway, "slipway"), (mlserver, "mlserver")]
            for side, kind in order if number % 2 == 0 else order[::-1]:
                print(f"round {number + 1}/{args.rounds}: {side.name}", file=sys.stderr)
                if kind == "slipway":
                    started_at = measure(
                        side, lambda port: start_slipway(work, port, slipway_bin, log), args.seconds, number == 0
                    )
                    side.phases.append(slipway_phases(log, started_at))
                else:
                    measure(side, lambda port: start_mlserver(work, port, mlserver_bin), args.seconds, number == 0)
    print(report(slipway, mlserver, args.seconds, args.rounds))


if __name__ == "__main__":
    main()
