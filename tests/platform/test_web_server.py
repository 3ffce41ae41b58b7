"""The web server as `make run` and the image start it (gunicorn with platform/gunicorn.conf.py), over
real TCP on 127.0.0.1."""

import http.client
import os
import time

import pytest

from tests.support.faults import Platform


@pytest.fixture
def web(tmp_path):
    # /healthz reads no database: a SQLite file that is never created is enough.
    platform = Platform(
        tmp_path / "platform",
        database_url=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        redis_url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    platform.start_web(gunicorn=True)
    yield platform
    platform.stop()


def test_it_serves_a_keep_alive_connection_that_was_idle_longer_than_gunicorns_default(web):
    # Gunicorn closes an idle connection after 2 s by default. A client (a proxy, a script) that sends
    # its next request on it at that moment gets "connection reset by peer": the load test's users,
    # pausing 1 to 3 s, saw one such error in a hundred requests.
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    connection.request("GET", "/healthz")
    first = connection.getresponse()
    first.read()
    local_address = connection.sock.getsockname()

    time.sleep(3)
    connection.request("GET", "/healthz")
    second = connection.getresponse()

    assert first.status == second.status == 200
    assert connection.sock.getsockname() == local_address  # the same connection, not a new one
    connection.close()
