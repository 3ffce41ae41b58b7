"""What start-up costs: the supervisor forks its workers as soon as the model has loaded, the server
imports nothing it does not serve with, SciPy's docstrings are not rewritten and OpenBLAS starts no
threads that would compete with the import."""

from __future__ import annotations

import ast
import email.utils
import importlib
import importlib.util
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import joblib
import pytest

import serving.http
from serving.config import load_config, read_settings, usable_cpus
from serving.http import Server, format_http_date
from serving.protocol import App
from tests.support.services import wait_until
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


# What a scikit-learn model's import makes of SciPy, printed: its decorated functions' docstrings and what
# those functions compute (each of the three went through one of the docstring rewriters at import).
SCIPY_IN_USE = """
import json, sys
{setup}
import numpy as np, scipy.sparse, scipy.stats
from sklearn.linear_model import LogisticRegression
data = np.array([[3.0, 1.0, 2.0, 2.0], [2.0, 2.0, 9.0, 4.0]])
print(json.dumps({{
    "rankdata_doc": scipy.stats.rankdata.__doc__,
    "ttest_doc": scipy.stats.ttest_1samp.__doc__,
    "ranks": scipy.stats.rankdata(data, axis=1).tolist(),
    "ttest": [float(v) for v in scipy.stats.ttest_1samp(data, 1.0, axis=None)],
    "sparse": scipy.sparse.random(4, 4, density=0.5, rng=7).toarray().tolist(),
    "parser": sys.modules["scipy._lib._docscrape"].FunctionDoc.__module__,
}}))
"""
KEEP = "from serving.docstrings import keep_scipy_docstrings\nkeep_scipy_docstrings()"
KEEP_UNVERIFIED = "import serving.docstrings as d\nd.VERIFIED_SCIPY = ()\nd.keep_scipy_docstrings()"


def scipy_in_use(setup: str) -> dict:
    code = SCIPY_IN_USE.format(setup=setup)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(result.stdout)


def docstring_as_written(source: Path, function: str) -> str:
    tree = ast.parse(source.read_text(encoding="utf-8"))
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    return ast.get_docstring(node, clean=False) or ""


def test_scipy_docstrings_stay_as_written_and_scipy_computes_the_same():
    rewritten, kept, unverified = scipy_in_use(""), scipy_in_use(KEEP), scipy_in_use(KEEP_UNVERIFIED)

    assert kept["parser"] == "serving.docstrings"
    scipy = importlib.util.find_spec("scipy")
    assert scipy is not None and scipy.submodule_search_locations
    written = docstring_as_written(Path(scipy.submodule_search_locations[0], "stats", "_stats_py.py"), "rankdata")
    assert kept["rankdata_doc"] == written.lstrip()
    assert "Array API Standard Support" in rewritten["rankdata_doc"]  # what SciPy itself adds at import
    assert kept["ttest_doc"] != rewritten["ttest_doc"]
    for result in ("ranks", "ttest", "sparse"):
        assert kept[result] == rewritten[result], result
    # A SciPy release nobody has read is left to rewrite its docstrings: its parser may do more.
    assert unverified == rewritten


# A stand-in for a scikit-learn estimator that notes how many threads the process unpickling it runs.
THREAD_COUNTING_ESTIMATOR = """
import os

import numpy as np


class ThreadCountingEstimator:
    def __init__(self):
        self.n_features_in_ = 4  # some state, so that unpickling calls __setstate__

    def __setstate__(self, state):
        with open(os.environ["THREADS_FILE"], "w") as handle:
            handle.write(str(len(os.listdir("/proc/self/task"))))
        self.__dict__.update(state)

    def predict(self, features):
        return np.zeros(len(features))
"""


@pytest.fixture
def thread_counting_model(tmp_path, model_config, monkeypatch) -> Path:
    (tmp_path / "thread_counting.py").write_text(THREAD_COUNTING_ESTIMATOR, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "thread_counting", raising=False)
    joblib.dump(importlib.import_module("thread_counting").ThreadCountingEstimator(), tmp_path / "model.joblib")
    model_config(tmp_path, name="threads", framework="sklearn", artifact="model.joblib")
    return tmp_path


def threads_while_loading(start_server, model_dir: Path, **env: str) -> int:
    threads_file = model_dir / "threads"
    server = start_server(
        model_dir, SLIPWAY_WORKERS=str(usable_cpus()), PYTHONPATH=str(model_dir), THREADS_FILE=str(threads_file), **env
    )
    # No probe until then: each connection would have a thread of its own.
    wait_until(lambda: threads_file.exists() and threads_file.read_text(), timeout=30, message="the model loading")
    server.wait_ready()
    return int(threads_file.read_text())


UNSET = {"OPENBLAS_NUM_THREADS": "", "GOTO_NUM_THREADS": "", "OMP_NUM_THREADS": ""}


@pytest.mark.skipif(usable_cpus() < 2, reason="with one CPU OpenBLAS starts no thread of its own anyway")
def test_openblas_starts_no_threads_beside_the_import_when_every_cpu_has_a_worker(thread_counting_model, start_server):
    threads = threads_while_loading(start_server, thread_counting_model, **UNSET)

    assert threads == 2  # the supervisor's own and the one answering probes while it loads, no BLAS thread


@pytest.mark.skipif(usable_cpus() < 2, reason="with one CPU OpenBLAS starts no thread of its own anyway")
def test_an_operators_own_blas_thread_count_is_kept(thread_counting_model, start_server):
    env = {**UNSET, "OPENBLAS_NUM_THREADS": "2"}
    threads = threads_while_loading(start_server, thread_counting_model, **env)

    assert threads > 2
