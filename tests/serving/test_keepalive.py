"""A keep-alive client is answered at once: no response waits for the client's delayed ACK."""

from __future__ import annotations

import http.client
import json
import socket
import time

import pytest

from serving.http import accept

REQUEST = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}]}


def test_accepted_connections_have_nagle_turned_off():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, remote = accept(listener)
        with client, accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert remote == "127.0.0.1"


@pytest.mark.benchmark
def test_a_hundred_requests_on_one_keep_alive_connection_take_milliseconds_each(sklearn_server):
    connection = http.client.HTTPConnection("127.0.0.1", sklearn_server.port, timeout=10)
    body = json.dumps(REQUEST)
    connection.request("POST", "/v2/models/iris/infer", body, {"Content-Type": "application/json"})
    connection.getresponse().read()
    sock = connection.sock

    started = time.perf_counter()
    for _ in range(100):
        connection.request("POST", "/v2/models/iris/infer", body, {"Content-Type": "application/json"})
        answer = connection.getresponse()
        assert answer.status == 200
        answer.read()
    elapsed = time.perf_counter() - started

    assert connection.sock is sock, "the server closed the keep-alive connection"
    connection.close()
    # With the stall, each answer waited about 40 ms for the client's delayed ACK: 4 s in all.
    assert elapsed < 1.5, f"100 requests took {elapsed:.2f} s"
