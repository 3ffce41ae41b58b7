"""Worker processes: one per CPU, ready together, replaced when one dies, gone when the server stops."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time

import joblib
import pytest
import requests

from serving.config import cgroup_cpu_limit, default_workers
from tests.support.services import wait_until

GATED_MODEL = """
import os, time

import numpy as np


class Model:
    def load(self, model_dir):
        # Each worker loads only once the test opens its own gate, a file named after its pid.
        gate = os.path.join(os.environ["GATE_DIR"], str(os.getpid()))
        deadline = time.time() + 30
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.02)

    def predict(self, inputs):
        return {"pid": np.array([os.getpid()])}
"""
# A stand-in for a scikit-learn estimator whose unpickling waits for the test's gate, and says who unpickled it.
GATED_ESTIMATOR = """
import os, time

import numpy as np


class GatedEstimator:
    def __init__(self):
        self.n_features_in_ = 4

    def __setstate__(self, state):
        deadline = time.time() + 30
        while not os.path.exists(os.environ["GATE_FILE"]) and time.time() < deadline:
            time.sleep(0.02)
        with open(os.environ["LOADS_FILE"], "a") as handle:
            handle.write(f"{os.getpid()}\\n")
        self.__dict__.update(state)

    def predict(self, features):
        return np.full(len(features), os.getpid())
"""
IRIS_ROW = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}]}


def fresh_get(server, path: str) -> requests.Response:
    """A request on a new connection, so the kernel may hand it to any worker."""
    return requests.get(server.url(path), timeout=10, headers={"Connection": "close"})


def test_readiness_waits_for_every_worker(tmp_path, start_server, model_config):
    (tmp_path / "model.py").write_text(GATED_MODEL, encoding="utf-8")
    model_config(tmp_path, name="gated", framework="python", artifact=".")
    gates = tmp_path / "gates"
    gates.mkdir()
    server = start_server(tmp_path, SLIPWAY_WORKERS="2", GATE_DIR=str(gates))
    assert server.wait_for_event("listening")["workers"] == 2
    first, second = sorted(wait_until(lambda: len(server.worker_pids()) == 2 and server.worker_pids(), timeout=10))

    (gates / str(first)).touch()
    wait_until(lambda: server.metrics()["slipway_workers_ready"] == 1, timeout=10, message="one worker ready")
    for _ in range(6):  # whichever worker answers, the server is not ready while one still loads
        answer = fresh_get(server, "/v2/health/ready")
        assert answer.status_code == 503
        assert answer.json()["error"] in ("model not loaded yet", "1 of 2 workers have loaded the model")
    assert server.metrics()["slipway_model_ready"] == 0

    (gates / str(second)).touch()
    server.wait_ready(timeout=10)
    assert server.metrics()["slipway_workers_ready"] == 2
    answering = set()
    for _ in range(20):
        answer = requests.post(
            server.url("/v2/models/gated/infer"),
            json={"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]},
            headers={"Connection": "close"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        answering.add(answer.json()["outputs"][0]["data"][0])
    assert answering == {first, second}  # new connections are shared between the workers


def test_a_scikit_learn_model_is_loaded_once_and_shared_by_the_workers(
    tmp_path, start_server, model_config, monkeypatch
):
    (tmp_path / "gated_estimator.py").write_text(GATED_ESTIMATOR, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gated_estimator", raising=False)
    gated_estimator = importlib.import_module("gated_estimator")
    joblib.dump(gated_estimator.GatedEstimator(), tmp_path / "model.joblib")
    model_config(tmp_path, name="gated", framework="sklearn", artifact="model.joblib")
    gate, loads = tmp_path / "gate", tmp_path / "loads"
    env = {"PYTHONPATH": str(tmp_path), "GATE_FILE": str(gate), "LOADS_FILE": str(loads)}
    server = start_server(tmp_path, SLIPWAY_WORKERS="2", **env)
    server.wait_listening()

    # Loading: the supervisor answers probes itself, honestly, and has forked no worker yet.
    assert server.get("/v2/health/live").status_code == 200
    for _ in range(3):
        answer = fresh_get(server, "/v2/health/ready")
        assert answer.status_code == 503
        assert answer.json() == {"error": "model not loaded yet", "state": "loading"}
    assert server.worker_pids() == set()

    gate.touch()
    server.wait_ready(timeout=15)

    workers = server.worker_pids()
    assert len(workers) == 2
    answering = set()
    for _ in range(20):
        answer = requests.post(
            server.url("/v2/models/gated/infer"), json=IRIS_ROW, headers={"Connection": "close"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        answering.add(answer.json()["outputs"][0]["data"][0])
    assert answering == workers  # both workers predict with the estimator...
    assert loads.read_text().split() == [str(server.process.pid)]  # ...that the supervisor alone unpickled, once
    (loaded,) = server.events("model_loaded")
    assert loaded["framework"] == "sklearn"


def test_metrics_count_the_requests_of_every_worker(sklearn_model_dir, start_server):
    server = start_server(sklearn_model_dir, SLIPWAY_WORKERS="2")
    server.wait_ready()
    before = server.metrics().get('slipway_requests_total{endpoint="infer",code="200"}', 0)

    for _ in range(10):
        answer = requests.post(
            server.url("/v2/models/iris/infer"), json=IRIS_ROW, headers={"Connection": "close"}, timeout=10
        )
        assert answer.status_code == 200

    assert server.metrics()['slipway_requests_total{endpoint="infer",code="200"}'] == before + 10
    workers = {event["worker"] for event in server.events("request") if event["path"].endswith("/infer")}
    assert workers == {0, 1}
    assert server.metrics()["slipway_workers"] == 2


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(sklearn_model_dir, start_server):
    server = start_server(sklearn_model_dir, SLIPWAY_WORKERS="2")
    server.wait_ready()
    workers = server.worker_pids()
    assert len(workers) == 2
    victim = min(workers)

    os.kill(victim, signal.SIGKILL)

    exited = server.wait_for_event("worker_exited")
    assert exited["pid"] == victim and exited["exit"] == "was killed by SIGKILL"
    wait_until(
        lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(),
        timeout=10,
        message="a new worker",
    )
    server.wait_ready(timeout=10)
    for _ in range(4):
        answer = requests.post(
            server.url("/v2/models/iris/infer"), json=IRIS_ROW, headers={"Connection": "close"}, timeout=10
        )
        assert answer.status_code == 200
    assert server.metrics()["slipway_worker_restarts_total"] == 1


def test_sigterm_stops_the_workers_too(sklearn_model_dir, start_server):
    server = start_server(sklearn_model_dir, SLIPWAY_WORKERS="2")
    server.wait_ready()
    workers = server.worker_pids()

    assert server.stop() == 0

    assert server.events("stopped")
    assert not [pid for pid in workers if os.path.exists(f"/proc/{pid}")]


def test_workers_stop_when_their_supervisor_is_killed(sklearn_model_dir, start_server):
    server = start_server(sklearn_model_dir, SLIPWAY_WORKERS="2")
    server.wait_ready()
    workers = server.worker_pids()

    server.process.kill()
    server.process.wait()

    # Orphans notice within one accept poll and end by themselves, instead of serving on unsupervised.
    wait_until(lambda: not [pid for pid in workers if _alive(pid)], timeout=10, message="the orphaned workers to stop")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "50000 100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({}, None),
    ],
)
def test_the_cpu_limit_is_read_from_the_cgroup(tmp_path, files, expected):
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(content)

    assert cgroup_cpu_limit(tmp_path) == expected


def test_without_a_setting_there_is_a_worker_per_cpu(sklearn_model_dir, start_server):
    server = start_server(sklearn_model_dir)

    assert server.wait_for_event("listening")["workers"] == default_workers()
    server.wait_ready()
    assert len(server.worker_pids()) == default_workers()
    assert 1 <= default_workers() <= len(os.sched_getaffinity(0))


def test_an_invalid_worker_count_is_a_configuration_error(sklearn_model_dir, start_server):
    server = start_server(sklearn_model_dir, SLIPWAY_WORKERS="two")

    assert server.process.wait(timeout=10) == 2
    time.sleep(0.1)
    assert "SLIPWAY_WORKERS" in server.events("invalid_config")[0]["error"]
