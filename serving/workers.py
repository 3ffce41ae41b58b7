"""Pre-forked workers: one process per CPU the container may use, all accepting on one listening socket.

The supervisor (the container's main process) binds the socket, loads the model itself when the
framework allows it (loaders.LOADED_BEFORE_FORK, so the workers share its memory), forks the workers and
then only minds them: it restarts a worker that dies, and it ends the server, with exit code 3, when the
model cannot be loaded. While it loads, a thread answers probes on the socket (liveness 200, readiness
503); that thread is gone before any fork, so every worker starts from a single-threaded process.

Python threads share one interpreter lock, so a single process answers on one core at a time: the
workers are what use the others. They all accept on the socket they inherited; the kernel hands each
new connection to one of the workers waiting for it.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import threading
import time
from types import FrameType

from serving.board import FAILED, LOADING, READY
from serving.config import ModelConfig, Settings
from serving.contract import EXIT_LOAD_FAILED
from serving.http import Server
from serving.loaders import LOADED_BEFORE_FORK
from serving.logs import log_event
from serving.protocol import App

DRAIN_SECONDS = 10.0
SUPERVISE_SECONDS = 0.05
RESTART_BACKOFF_SECONDS = 1.0
DEATHS_WHILE_LOADING = 3  # a worker dying this often before it ever loads the model means it cannot


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1024)  # probes must not be refused while inference requests queue
    return listener


class Supervisor:
    def __init__(self, config: ModelConfig, settings: Settings, listener: socket.socket) -> None:
        self.config = config
        self.settings = settings
        self.listener = listener
        self.app = App(config, settings)
        self.started = time.monotonic()
        self.workers: dict[int, int] = {}  # pid -> slot
        self.spawned_at: dict[int, float] = {}  # slot -> when its current worker started
        self.deaths_while_loading: dict[int, int] = {}
        self.restart_due: dict[int, float] = {}  # slot -> when to start it again
        self.stopping = False

    # -- the supervisor's own life

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        gc.disable()  # a framework's import makes no garbage worth collecting: about 7 % sooner ready
        if self.config.framework in LOADED_BEFORE_FORK and not self._load_before_fork():
            return self._fail(self.app.board.failure() or "model failed to load")
        if self.stopping:
            log_event("info", "stopped", drained=True)
            return 0
        gc.enable()
        gc.freeze()  # objects made so far stay put, so the collector does not copy the shared pages
        for slot in range(self.settings.workers):
            self._spawn(slot)
        return self._supervise()

    def _request_stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self.stopping:
            log_event("info", "shutdown_requested", signal=signal.Signals(signum).name)
        self.stopping = True

    def _load_before_fork(self) -> bool:
        """Loads the model in this process while a thread answers probes; True when it loaded."""
        probes = Server(self.listener, self.app, close_after_each=True, wake_on_stop=True)
        thread = threading.Thread(target=probes.serve, name="probes", daemon=True)
        thread.start()
        try:
            loaded = self.app.load()
            if not loaded:
                self._wait(self.settings.load_failure_grace)  # readiness reports the error meanwhile
            return loaded
        finally:
            probes.stop()
            thread.join()
            probes.close_connections(timeout=1.0)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(SUPERVISE_SECONDS, max(0.0, deadline - time.monotonic())))

    def _fail(self, reason: str) -> int:
        self._stop_workers()
        log_event("error", "exiting", error=reason, exit_code=EXIT_LOAD_FAILED)
        return EXIT_LOAD_FAILED

    # -- the workers

    def _spawn(self, slot: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 70  # EX_SOFTWARE, should the worker itself break
            try:
                code = run_worker(self.app, self.listener, slot, supervisor=os.getppid())
            except BaseException as exc:
                log_event("error", "worker_crashed", worker=slot, error=f"{type(exc).__name__}: {exc}")
            finally:
                os._exit(code)
        self.workers[pid] = slot
        self.spawned_at[slot] = time.monotonic()

    def _supervise(self) -> int:
        board = self.app.board
        ready_logged = False
        while not self.stopping:
            self._reap()
            failure = board.failure()
            if failure is not None:
                self._wait(self.settings.load_failure_grace)
                return self._fail(failure)
            for slot in range(board.workers):
                if board.state(slot)[0] == READY:
                    self.deaths_while_loading[slot] = 0
            if not ready_logged and board.all_ready():
                ready_logged = True
                seconds = round(time.monotonic() - self.started, 3)
                log_event("info", "ready", workers=board.workers, seconds=seconds)
            now = time.monotonic()
            for slot, due in list(self.restart_due.items()):
                if now >= due:
                    del self.restart_due[slot]
                    self._spawn(slot)
            time.sleep(SUPERVISE_SECONDS)
        self._stop_workers()
        log_event("info", "stopped", drained=True)
        return 0

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid not in self.workers:
                continue  # as a container's first process it also reaps orphans the model's code left behind
            slot = self.workers.pop(pid)
            if self.stopping:
                continue
            board = self.app.board
            state = board.state(slot)[0]
            if state == FAILED:
                continue  # its load error ends the server (see _supervise)
            board.set(slot, LOADING, 0)
            how = describe_exit(status)
            log_event("error", "worker_exited", worker=slot, pid=pid, exit=how)
            if state != READY:
                self.deaths_while_loading[slot] = self.deaths_while_loading.get(slot, 0) + 1
                if self.deaths_while_loading[slot] >= DEATHS_WHILE_LOADING:
                    reason = f"model failed to load: its worker {how} while loading it, {DEATHS_WHILE_LOADING} times"
                    board.set(board.supervisor, FAILED, os.getpid(), reason)
                    continue
            self.app.metrics.worker_restarted()
            # Restarting at once a worker that dies at once would only spin.
            quick_death = time.monotonic() - self.spawned_at.get(slot, 0.0) < RESTART_BACKOFF_SECONDS
            self.restart_due[slot] = time.monotonic() + (RESTART_BACKOFF_SECONDS if quick_death else 0.0)

    def _stop_workers(self) -> None:
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + DRAIN_SECONDS + 2
        while self.workers and time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                self.workers.pop(pid, None)
            else:
                time.sleep(SUPERVISE_SECONDS)
        for pid in self.workers:
            _signal(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.workers.clear()


def run_worker(app: App, listener: socket.socket, slot: int, *, supervisor: int) -> int:
    """The life of one worker process, from the fork to its exit code."""
    app.attach(slot)
    server = Server(listener, app)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        app.shutting_down = True
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if app.model is None:
        threading.Thread(target=app.load, name="model-loader", daemon=True).start()
    # A worker whose supervisor is gone (killed outright) must not serve on alone.
    server.serve(still_wanted=lambda: os.getppid() == supervisor)
    app.shutting_down = True
    app.drain(DRAIN_SECONDS)
    return 0


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
