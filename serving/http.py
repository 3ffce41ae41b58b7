"""HTTP/1.1 for one worker: accept connections, read requests, write each answer in one piece.

A thread per connection, up to `max_connections`; past that a connection is told 503 with Retry-After
(liveness still answered) and closed. Every answer goes out in a single write on a socket with
TCP_NODELAY: headers and body written separately would leave the body waiting for the client's
delayed ACK, about 40 ms per request on a keep-alive connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urlsplit

from serving.errors import ClientError
from serving.logs import log_event
from serving.protocol import App, Handler, Response, error

MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100
RECV_BYTES = 256 * 1024
ACCEPT_POLL_SECONDS = 0.2  # how soon the accept loop notices a stop
LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 64 * 1024 * 1024
MAX_REJECTORS = 16  # threads answering 503 to connections over the limit; past that they are just closed
REASONS = {status.value: status.phrase for status in HTTPStatus}


class BadRequest(Exception):
    """The bytes are not an HTTP request we can answer; answered, then the connection is closed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client closed the connection, or stayed silent past the idle timeout, between requests."""


@dataclass
class Request:
    method: str
    target: str
    path: str
    version: str
    headers: dict[str, str]  # names in lower case

    @property
    def keep_alive(self) -> bool:
        tokens = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        return "keep-alive" in tokens if self.version == "HTTP/1.0" else "close" not in tokens

    @property
    def has_body(self) -> bool:
        return "transfer-encoding" in self.headers or self.headers.get("content-length", "0") not in ("", "0")


def parse_head(head: bytes) -> Request:
    lines = head.split(b"\n")
    request_line = lines[0].rstrip(b"\r").decode("latin-1")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest(f"malformed request line {request_line[:100]!r}")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(f"unsupported protocol version {version[:20]!r}", 505)
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(f"more than {MAX_HEADERS} header lines", 431)
    headers: dict[str, str] = {}
    for raw in lines[1:]:
        line = raw.rstrip(b"\r")
        name, separator, value = line.partition(b":")
        if not separator or not name or name != name.strip():
            raise BadRequest(f"malformed header line {line[:100]!r}")
        key = name.decode("latin-1").lower()
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key == "content-length":
                if headers[key] != text:
                    raise BadRequest("conflicting Content-Length headers")
                continue
            text = f"{headers[key]}, {text}"
        headers[key] = text
    path = target.split("?", 1)[0].split("#", 1)[0] if target.startswith("/") else urlsplit(target).path or "/"
    return Request(method, target, path, version, headers)


def accept(listener: socket.socket) -> tuple[socket.socket, str]:
    sock, address = listener.accept()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock, str(address[0])


_date_cache: tuple[int, str] = (0, "")
# RFC 9110's IMF-fixdate, in English whatever the locale (email.utils would do it, at the cost of
# importing the email package, calendar and locale into every server start).
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_http_date(seconds: int) -> str:
    t = time.gmtime(seconds)
    return (
        f"{DAY_NAMES[t.tm_wday]}, {t.tm_mday:02d} {MONTH_NAMES[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, format_http_date(now))
    return _date_cache[1]


def encode_response(response: Response, *, keep_alive: bool) -> bytes:
    if response.content_type.startswith("application/json"):
        body = json.dumps(response.payload, separators=(",", ":")).encode("utf-8")
    else:
        body = str(response.payload).encode("utf-8")
    lines = [
        f"HTTP/1.1 {response.status} {REASONS.get(response.status, '')}",
        "Server: slipway",
        f"Date: {http_date()}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(body)}",
        *(f"{name}: {value}" for name, value in response.headers.items()),
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One client connection: requests read and answered in turn, until either side closes."""

    def __init__(self, sock: socket.socket, remote: str, server: Server) -> None:
        self.sock = sock
        self.remote = remote
        self.server = server
        self.app = server.app
        self.buffer = bytearray()
        self.keep_alive = True
        self.body_read = False

    # -- reading

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(RECV_BYTES)
        if not chunk:
            raise ConnectionResetError("the client closed the connection")
        self.buffer += chunk

    def read_request(self) -> Request:
        deadline = time.monotonic() + self.server.idle_timeout
        while True:
            # Empty lines before a request are to be ignored (RFC 9112, 2.2).
            while self.buffer[:2] == b"\r\n" or self.buffer[:1] == b"\n":
                del self.buffer[: 2 if self.buffer[:1] == b"\r" else 1]
            end = self.buffer.find(b"\r\n\r\n")
            separator = 4
            if end < 0:
                end, separator = self.buffer.find(b"\n\n"), 2
            if end >= 0:
                head = bytes(self.buffer[:end])
                del self.buffer[: end + separator]
                return parse_head(head)
            if len(self.buffer) > MAX_HEAD_BYTES:
                raise BadRequest(f"request head larger than {MAX_HEAD_BYTES} bytes", 431)
            started = bool(self.buffer)
            try:
                self._fill(deadline)
            except (TimeoutError, ConnectionError) as exc:
                if started:
                    raise BadRequest("the request head did not arrive in time", 408) from exc
                raise ClientGone from exc
            if not started:  # the first bytes of a request: the rest of its head gets a full timeout
                deadline = time.monotonic() + self.server.idle_timeout

    def read_body(self, request: Request) -> bytes:
        if "transfer-encoding" in request.headers:
            raise ClientError("chunked request bodies are not supported; send Content-Length", 411)
        raw = request.headers.get("content-length", "0")
        if not raw.isdigit():
            raise ClientError(f"invalid Content-Length {raw!r}")
        length = int(raw)
        limit = self.server.limits_body_bytes
        if length > limit:
            raise ClientError(
                f"request body of {length} bytes exceeds the limit of {limit} bytes (SLIPWAY_MAX_BODY_BYTES)", 413
            )
        if request.headers.get("expect", "").lower() == "100-continue" and len(self.buffer) < length:
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        deadline = time.monotonic() + self.server.idle_timeout
        while len(self.buffer) < length:
            try:
                self._fill(deadline)
            except TimeoutError:
                self.keep_alive = False
                raise ClientError(
                    f"the request body did not arrive within {self.server.idle_timeout:g} s", 408
                ) from None
        self.body_read = True
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return body

    # -- answering

    def run(self) -> None:
        try:
            while self.keep_alive:
                try:
                    request = self.read_request()
                except ClientGone:
                    return
                except BadRequest as exc:
                    self.keep_alive = False
                    self._send(error(exc.status, str(exc)))
                    return
                self.serve(request)
        except OSError:
            pass  # the client went away mid-answer: nothing left to tell it
        finally:
            self.server.closed(self)
            self.sock.close()

    def serve(self, request: Request) -> None:
        app = self.app
        started = time.perf_counter()
        app.request_started()
        try:
            self.body_read = False
            endpoint, handler, params = app.route(request.method, request.path)
            try:
                response = self._respond(request, endpoint, handler, params)
            except ClientError as exc:
                response = error(exc.status, str(exc))
                response.headers.update(exc.headers)
            except Exception as exc:
                log_event("error", "internal_error", path=request.path, traceback=traceback.format_exc())
                response = error(500, f"internal error: {type(exc).__name__}")
            unread_body = request.has_body and not self.body_read
            if not request.keep_alive or unread_body or app.shutting_down or self.server.close_after_each:
                # An unread body would be parsed as the next request: this connection ends here.
                self.keep_alive = False
            sent = self._send(response)
            if unread_body:
                self._discard_unread_body()
        finally:
            app.request_finished()
        elapsed = time.perf_counter() - started
        app.metrics.observe(endpoint, response.status, elapsed)
        log_event(
            "info",
            "request",
            method=request.method,
            path=request.target[:2048],
            status=response.status,
            duration_ms=round(elapsed * 1000, 3),
            bytes_out=sent,
            remote=self.remote,
            worker=app.slot,
        )

    def _respond(self, request: Request, endpoint: str, handler: Handler | None, params: dict[str, str]) -> Response:
        if handler is None:
            return error(404, f"no such endpoint: {request.path}")
        wanted = "POST" if endpoint == "infer" else "GET"
        if request.method != wanted:
            return Response(405, {"error": f"use {wanted} for this endpoint"}, headers={"Allow": wanted})
        return handler(read_body=lambda: self.read_body(request), **params)

    def _send(self, response: Response) -> int:
        data = encode_response(response, keep_alive=self.keep_alive)
        self.sock.settimeout(self.server.idle_timeout)
        self.sock.sendall(data)
        return len(data)

    def _discard_unread_body(self) -> None:
        # Closing a socket with unread input sends a reset, and the client may lose our answer (a 413):
        # stop writing, then read and drop what the client still sends, for a bounded time and size.
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_SECONDS
            remaining = LINGER_MAX_BYTES
            while remaining > 0 and time.monotonic() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = self.sock.recv(min(remaining, RECV_BYTES))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass


class Server:
    """The accept loop of one process, and the connections it serves."""

    def __init__(
        self, listener: socket.socket, app: App, *, close_after_each: bool = False, wake_on_stop: bool = False
    ) -> None:
        """`wake_on_stop`: stop() ends serve() at once instead of at the next accept poll. Only for a process
        that accepts alone (the supervisor's probes while it loads the model): it waits in select(), and
        forked workers waiting like that on one socket would all wake for each connection."""
        settings = app.settings
        self.listener = listener
        self.app = app
        self.max_connections = settings.max_connections
        self.idle_timeout = settings.idle_timeout
        self.limits_body_bytes = settings.limits.body_bytes
        self.close_after_each = close_after_each
        self._connections: dict[Connection, threading.Thread] = {}
        self._rejectors = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._wake = os.pipe() if wake_on_stop else None

    def serve(self, *, still_wanted: Callable[[], bool] = lambda: True) -> None:
        """Accepts connections until stop(), or until `still_wanted` (asked between polls) says no."""
        self.listener.settimeout(ACCEPT_POLL_SECONDS)
        while not self._stopping.is_set():
            if not still_wanted():
                break
            if self._wake is not None:
                listening = self.listener.fileno()
                readable, _, _ = select.select([listening, self._wake[0]], [], [], ACCEPT_POLL_SECONDS)
                if listening not in readable:
                    continue
            try:
                sock, remote = accept(self.listener)
            except (TimeoutError, ConnectionAbortedError):
                continue  # nothing to accept yet, or a client that gave up while queued
            except OSError as exc:
                if self._stopping.is_set():
                    break
                log_event("error", "accept_failed", error=str(exc))
                time.sleep(ACCEPT_POLL_SECONDS)  # out of file descriptors, most likely: let some close
                continue
            self._dispatch(sock, remote)

    def stop(self) -> None:
        self._stopping.set()
        if self._wake is not None:
            os.write(self._wake[1], b"\0")

    def _dispatch(self, sock: socket.socket, remote: str) -> None:
        with self._lock:
            if len(self._connections) < self.max_connections:
                connection = Connection(sock, remote, self)
                thread = threading.Thread(target=connection.run, name=f"conn-{remote}", daemon=True)
                self._connections[connection] = thread
            elif self._rejectors < MAX_REJECTORS:
                self._rejectors += 1
                thread = threading.Thread(target=self._reject, args=(sock, remote), name="reject", daemon=True)
            else:
                sock.close()
                return
        thread.start()

    def closed(self, connection: Connection) -> None:
        with self._lock:
            self._connections.pop(connection, None)

    def _reject(self, sock: socket.socket, remote: str) -> None:
        """Over the connection limit: answer this one request with 503 (liveness truthfully), then close."""
        connection = Connection(sock, remote, self)
        connection.keep_alive = False
        try:
            try:
                request = connection.read_request()
            except BadRequest as exc:
                connection._send(error(exc.status, str(exc)))
                return
            if request.path == "/v2/health/live" and request.method == "GET":
                response = Response(200, {"live": True})
            else:
                response = error(503, f"server busy: {self.max_connections} connections already open; retry later")
                response.headers["Retry-After"] = "1"
            connection._send(response)
            self.app.metrics.observe(self.app.route(request.method, request.path)[0], response.status, 0.0)
            if request.has_body:
                connection._discard_unread_body()
        except (ClientGone, OSError):
            pass
        finally:
            sock.close()
            with self._lock:
                self._rejectors -= 1

    def close_connections(self, timeout: float) -> None:
        """Waits up to `timeout` for the connections to end, then ends those still waiting for a request.

        Called once serve() has returned; a workers' fork must not inherit the wake-up pipe."""
        if self._wake is not None:
            for fd in self._wake:
                os.close(fd)
            self._wake = None
        with self._lock:
            connections = dict(self._connections)
        deadline = time.monotonic() + timeout
        for thread in connections.values():
            thread.join(max(0.0, deadline - time.monotonic()))
        for connection, thread in connections.items():
            if thread.is_alive():
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)
                thread.join(timeout)
