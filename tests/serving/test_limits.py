"""Hostile requests: the server refuses what is too big before building any array, and keeps answering.

Each test runs the server as the image does and attacks it over HTTP. Memory is judged by each worker's
peak resident size (VmHWM), which no later free() can hide.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.support.services import wait_until
from tests.support.serving import ServerProcess, write_config

MiB = 1024 * 1024

ECHO = """
import time


class Model:
    def predict(self, inputs):
        if "slow" in inputs:
            time.sleep(float(inputs["slow"][0]))
        return dict(inputs)
"""


@pytest.fixture(scope="module")
def echo_dir(tmp_path_factory) -> Path:
    model_dir = tmp_path_factory.mktemp("echo")
    (model_dir / "model.py").write_text(ECHO, encoding="utf-8")
    write_config(model_dir, name="echo", framework="python", artifact=".")
    return model_dir


@pytest.fixture(scope="module")
def echo_server(echo_dir):
    # Default limits: what an image runs with unless its environment says otherwise.
    server = ServerProcess(echo_dir, SLIPWAY_WORKERS="1")
    server.wait_ready()
    yield server
    server.stop()


def peak_memory_mib(server: ServerProcess) -> float:
    """The highest resident size any of the server's processes has had, in MiB."""
    peaks = []
    for pid in {server.process.pid, *server.worker_pids()}:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def infer(server: ServerProcess, body: bytes | str) -> requests.Response:
    return requests.post(
        server.url("/v2/models/echo/infer"), data=body, headers={"Content-Type": "application/json"}, timeout=60
    )


def tensor(datatype: str, data: list, shape: list[int] | None = None) -> dict:
    return {"name": "t", "datatype": datatype, "shape": shape if shape is not None else [len(data)], "data": data}


# The payload of the issue: about 1 MB of JSON, one string of a million characters and 1,000 of one.
# numpy left to guess makes it a fixed-width <U1000000 array: 1,001 x 4 MB = 4 GB.
ISSUE_STRINGS = ["x" * 1_000_000] + ["a"] * 1000


def test_the_one_megabyte_payload_of_the_issue_is_answered_without_a_big_array(echo_server):
    body = json.dumps({"inputs": [tensor("BYTES", ISSUE_STRINGS)]})
    assert len(body) < 1.1 * MiB

    answer = infer(echo_server, body)

    assert answer.status_code == 200, answer.text[:300]  # text is held as Python strings, not fixed width
    output = answer.json()["outputs"][0]
    assert output["shape"] == [1001] and output["data"][0] == ISSUE_STRINGS[0]
    assert peak_memory_mib(echo_server) < 400


@pytest.mark.parametrize(
    ("name", "payload", "status", "fragment"),
    [
        ("the issue's strings sent as numbers", tensor("FP32", ISSUE_STRINGS), 400, "needs numbers"),
        ("the issue's strings, ragged", tensor("BYTES", [ISSUE_STRINGS[:2], ["a"]], [3]), 400, "not rectangular"),
        (
            "a long string among many short ones, twice over",
            tensor("BYTES", ["y" * 2_000_000] + ["b"] * 500_000),
            413,
            "SLIPWAY_MAX_STRING_BYTES",
        ),
        ("a shape of a trillion elements", tensor("FP64", [1.0], [1_000_000, 1_000_000]), 413, "SLIPWAY_MAX_ELEMENTS"),
        ("a shape that overflows 64 bits", tensor("INT8", [1], [2**40, 2**40]), 413, "SLIPWAY_MAX_ELEMENTS"),
        ("an integer past any dtype", tensor("INT64", [2**80]), 400, "out of range for INT64"),
        ("an integer past a float", tensor("FP64", [10**400]), 400, "out of range for FP64"),
        ("mixed strings and numbers", tensor("FP64", [1.0, "2"]), 400, "needs numbers"),
        ("booleans for numbers", tensor("FP64", [True, 1.0]), 400, "needs numbers"),
        ("too many dimensions", tensor("FP64", [1.0], [1] * 40), 400, "dimensions"),
        ("more nested rows than the shape", tensor("FP64", [[1.0, 2.0]] * 5000, [2, 2]), 400, "more elements"),
    ],
)
def test_hostile_tensors_are_refused_before_an_array_is_built(echo_server, name, payload, status, fragment):
    answer = infer(echo_server, json.dumps({"inputs": [payload]}))

    assert answer.status_code == status, answer.text[:300]
    assert fragment in answer.json()["error"]
    assert peak_memory_mib(echo_server) < 400


def test_tensors_together_count_against_the_request_limits(echo_server):
    inputs = [tensor("INT8", [0] * (2 * MiB)) | {"name": "t0"}, tensor("INT8", [0], [3 * MiB]) | {"name": "t1"}]

    answer = infer(echo_server, json.dumps({"inputs": inputs}))

    assert answer.status_code == 413
    assert "t1" in answer.json()["error"] and "SLIPWAY_MAX_ELEMENTS" in answer.json()["error"]


@pytest.mark.parametrize(
    ("variable", "value", "payload"),
    [
        ("SLIPWAY_MAX_ELEMENTS", "100", tensor("FP64", [0.0] * 101)),
        ("SLIPWAY_MAX_TENSOR_BYTES", "800", tensor("FP64", [0.0] * 101)),
        ("SLIPWAY_MAX_TENSOR_BYTES", "800", tensor("BYTES", ["abcdefghij"] * 50)),  # 8 per reference + the text
        ("SLIPWAY_MAX_STRING_BYTES", "10", tensor("BYTES", ["é" * 6])),  # 12 bytes of UTF-8
        ("SLIPWAY_MAX_BODY_BYTES", "1000", tensor("FP64", [0.0] * 300)),
    ],
)
def test_each_limit_is_a_setting(echo_dir, start_server, variable, value, payload):
    server = start_server(echo_dir, SLIPWAY_WORKERS="1", **{variable: value})
    server.wait_ready()
    small = tensor("FP64", [0.0] * 10)

    refused = infer(server, json.dumps({"inputs": [payload]}))
    accepted = infer(server, json.dumps({"inputs": [small]}))

    assert refused.status_code == 413, refused.text
    assert variable in refused.json()["error"]
    assert accepted.status_code == 200


def test_deeply_nested_json_is_a_400(echo_server):
    answer = infer(echo_server, '{"inputs": ' + "[" * 200_000 + "]" * 200_000 + "}")

    assert answer.status_code == 400
    assert "not valid JSON" in answer.json()["error"]


def test_a_body_over_the_limit_is_refused_unread(echo_server):
    body = json.dumps({"inputs": [tensor("FP64", [0.5] * 2_000_000)]})
    assert len(body) > 8 * MiB

    answer = infer(echo_server, body)

    assert answer.status_code == 413
    assert "SLIPWAY_MAX_BODY_BYTES" in answer.json()["error"]


def test_after_every_attack_the_server_still_answers(echo_server):
    # Runs last in this module: the same process took every attack above.
    assert echo_server.get("/v2/health/ready").status_code == 200
    answer = infer(echo_server, json.dumps({"inputs": [tensor("FP64", [1.5, 2.5])]}))
    assert answer.status_code == 200
    assert answer.json()["outputs"][0]["data"] == [1.5, 2.5]
    assert echo_server.metrics()["slipway_worker_restarts_total"] == 0
    assert peak_memory_mib(echo_server) < 400


def test_concurrent_bodies_that_parse_into_many_objects_are_parsed_one_at_a_time(echo_dir, start_server):
    # "[]," is 3 bytes of JSON and 64 of Python objects: 8 MiB of it parses into about 200 MiB.
    server = start_server(echo_dir, SLIPWAY_WORKERS="1", SLIPWAY_QUEUE_TIMEOUT="60")  # all four wait their turn
    server.wait_ready()
    count = (8 * MiB - 200) // 3
    body = '{"inputs": [{"name": "t", "datatype": "FP64", "shape": [1], "data": [' + "[]," * count + "[]]}]}"
    answers: list[requests.Response] = []
    threads = [threading.Thread(target=lambda: answers.append(infer(server, body))) for _ in range(4)]

    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert [answer.status_code for answer in answers] == [400] * 4
    # Four parsed at once would peak near 800 MiB.
    assert peak_memory_mib(server) < 450


# --- load past the limits -------------------------------------------------------------------------


def idle_connection(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def exchange(sock: socket.socket, path: str) -> tuple[int, dict[str, str], dict]:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body)


def raw_get(server: ServerProcess, path: str) -> tuple[int, dict[str, str], dict]:
    with idle_connection(server) as sock:
        return exchange(sock, path)


def held_connection(server: ServerProcess) -> socket.socket:
    """A keep-alive connection the server has taken on (it answered on it), now silent."""

    def served() -> socket.socket | None:
        sock = idle_connection(server)
        if exchange(sock, "/v2/models/echo")[0] == 200:
            return sock
        sock.close()  # refused while an earlier connection was still being closed: try again
        return None

    return wait_until(served, timeout=5, interval=0.1, message="a connection the server takes on")


def test_connections_past_the_limit_get_503_with_retry_after(echo_dir, start_server):
    server = start_server(echo_dir, SLIPWAY_WORKERS="1", SLIPWAY_MAX_CONNECTIONS="2")
    server.wait_ready()
    server.http.close()  # the helper's own keep-alive connection must not count
    held = [held_connection(server) for _ in range(2)]

    status, headers, body = raw_get(server, "/v2/models/echo")
    assert status == 503
    assert headers["retry-after"] == "1"
    assert "2 connections" in body["error"]
    assert raw_get(server, "/v2/health/live")[0] == 200  # liveness stays truthful: the process is fine

    held.pop().close()
    wait_until(lambda: raw_get(server, "/v2/models/echo")[0] == 200, timeout=5, message="a freed connection")
    for sock in held:
        sock.close()


def test_inference_past_the_concurrency_limit_gets_503_and_probes_still_answer(echo_dir, start_server):
    server = start_server(echo_dir, SLIPWAY_WORKERS="1", SLIPWAY_MAX_CONCURRENCY="1", SLIPWAY_QUEUE_TIMEOUT="0.2")
    server.wait_ready()
    slow = {"inputs": [tensor("FP64", [2.0]) | {"name": "slow"}]}
    results: list[requests.Response] = []
    first = threading.Thread(target=lambda: results.append(infer(server, json.dumps(slow))))
    first.start()
    wait_until(lambda: server.metrics().get("slipway_requests_total", 0) is not None, timeout=1)
    time.sleep(0.5)  # the slow request holds the only slot

    refused = infer(server, json.dumps({"inputs": [tensor("FP64", [1.0])]}))
    ready = requests.get(server.url("/v2/health/ready"), timeout=5)
    first.join(10)

    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert "server busy" in refused.json()["error"]
    assert ready.status_code == 200
    assert results and results[0].status_code == 200


def test_silent_and_slow_clients_are_cut_off_after_the_idle_timeout(echo_dir, start_server):
    # Three connections: the helper's own (from wait_ready), and the two below.
    server = start_server(echo_dir, SLIPWAY_WORKERS="1", SLIPWAY_IDLE_TIMEOUT="1", SLIPWAY_MAX_CONNECTIONS="3")
    server.wait_ready()
    silent = idle_connection(server)
    slow = idle_connection(server)
    slow.sendall(b"POST /v2/models/echo/infer HTTP/1.1\r\nContent-")  # and never the rest

    assert silent.recv(100) == b""  # closed by the server after a second of silence
    answer = slow.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408 ")
    silent.close()
    slow.close()
    assert raw_get(server, "/v2/health/ready")[0] == 200  # their slots are free again
