"""What start-up costs: the supervisor forks its workers as soon as the model has loaded, and the server
imports nothing it does not serve with."""

from __future__ import annotations

import email.utils
import socket
import subprocess
import sys
import threading

import pytest

import serving.http
from serving.config import load_config, read_settings
from serving.http import Server, format_http_date
from serving.protocol import App
from tests.support.serving import REPO_ROOT


def test_the_probe_server_stops_at_once_instead_of_at_its_next_accept_poll(sklearn_model_dir, monkeypatch):
    # While the supervisor loads the model, a thread answers probes; the workers are forked only once it
    # has ended. Its accept loop must end when told, not when an accept poll happens to time out.
    monkeypatch.setattr(serving.http, "ACCEPT_POLL_SECONDS", 60.0)
    monkeypatch.setenv("SLIPWAY_MODEL_DIR", str(sklearn_model_dir))
    monkeypatch.setenv("SLIPWAY_WORKERS", "1")
    app = App(load_config(sklearn_model_dir), read_settings())
    with socket.create_server(("127.0.0.1", 0)) as listener:
        probes = Server(listener, app, close_after_each=True, wake_on_stop=True)
        thread = threading.Thread(target=probes.serve, daemon=True)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=10) as client:  # it does answer meanwhile
            client.sendall(b"GET /v2/health/ready HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 503 ")

        probes.stop()
        thread.join(timeout=10)

        assert not thread.is_alive()
        probes.close_connections(timeout=1.0)
        assert probes._wake is None  # the wake-up pipe is closed before any fork


@pytest.mark.parametrize("seconds", [0, 951782400, 1709164800, 1764288000, 4102444799])
def test_the_date_header_is_an_imf_fixdate(seconds):
    assert format_http_date(seconds) == email.utils.formatdate(seconds, usegmt=True)


def test_the_server_imports_no_http_client_and_the_healthcheck_no_numpy():
    code = (
        "import sys\n"
        "from serving.__main__ import healthcheck\n"
        "healthcheck_modules = set(sys.modules)\n"
        "import serving.workers\n"
        "unused = {'http.client', 'email', 'ssl', 'argparse', 'serving.probe'}\n"
        "print(sorted(unused & set(sys.modules)), 'numpy' in healthcheck_modules)\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "[] False"
