"""The HTTP/1.1 plumbing: parse a request, hand it to the App, write its answer, log it."""

from __future__ import annotations

import json
import socket
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from serving.errors import ClientError
from serving.logs import log_event
from serving.protocol import App, Handler, Response, error

LINGER_SECONDS = 2.0
LINGER_MAX_BYTES = 256 * 1024 * 1024


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "slipway"
    timeout = 60  # bounds a slow or silent client's hold on a thread
    server: SlipwayServer

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # replaced by the JSON access log

    def _handle(self, method: str) -> None:
        app = self.server.app
        app.request_started()
        try:
            self._handle_tracked(app, method)
        finally:
            app.request_finished()

    def _handle_tracked(self, app: App, method: str) -> None:
        started = time.perf_counter()
        self._body_consumed = False
        path = urlsplit(self.path).path
        endpoint, handler, params = app.route(method, path)
        try:
            response = self._respond(method, endpoint, handler, params)
        except ClientError as exc:
            response = error(exc.status, str(exc))
        except Exception as exc:
            log_event("error", "internal_error", path=path, traceback=traceback.format_exc())
            response = error(500, f"internal error: {type(exc).__name__}")
        unread_body = self.headers.get("Content-Length", "0") not in ("", "0") and not self._body_consumed
        if unread_body:
            self.close_connection = True  # the unread body would otherwise be parsed as the next request
        sent = self._send(response)
        if unread_body:
            self._discard_unread_body()
        elapsed = time.perf_counter() - started
        app.metrics.observe(endpoint, response.status, elapsed)
        log_event(
            "info",
            "request",
            method=method,
            path=self.path[:2048],
            status=response.status,
            duration_ms=round(elapsed * 1000, 3),
            bytes_out=sent,
            remote=self.client_address[0],
        )

    def _respond(self, method: str, endpoint: str, handler: Handler | None, params: dict[str, str]) -> Response:
        if handler is None:
            return error(404, f"no such endpoint: {urlsplit(self.path).path}")
        wanted = "POST" if endpoint == "infer" else "GET"
        if method != wanted:
            return Response(405, {"error": f"use {wanted} for this endpoint"}, headers={"Allow": wanted})
        return handler(read_body=self._read_body, **params)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise ClientError("chunked request bodies are not supported; send Content-Length", 411)
        raw_length = self.headers.get("Content-Length", "0")
        try:
            length = int(raw_length)
        except ValueError:
            raise ClientError(f"invalid Content-Length {raw_length!r}") from None
        if length < 0:
            raise ClientError(f"invalid Content-Length {raw_length!r}")
        limit = self.server.app.max_body_bytes
        if length > limit:
            raise ClientError(f"request body of {length} bytes exceeds the limit of {limit} bytes", 413)
        body = self.rfile.read(length)
        self._body_consumed = True
        return body

    def _discard_unread_body(self) -> None:
        # Closing a socket with unread input sends a reset, and the client may lose our answer (a 413):
        # stop writing, then read and drop what the client still sends, for a bounded time and size.
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_SECONDS)
            deadline = time.monotonic() + LINGER_SECONDS
            remaining = LINGER_MAX_BYTES
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass

    def _send(self, response: Response) -> int:
        if response.content_type.startswith("application/json"):
            body = json.dumps(response.payload, separators=(",", ":")).encode("utf-8")
        else:
            body = str(response.payload).encode("utf-8")
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return len(body)


class SlipwayServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # probes must not be refused while inference requests queue

    def __init__(self, address: tuple[str, int], app: App) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.app = app
        super().__init__(address, RequestHandler)
