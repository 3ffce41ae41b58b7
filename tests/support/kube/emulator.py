"""An emulated Kubernetes API server on 127.0.0.1, for tests that use the official `kubernetes` client.

    with KubeEmulator(version="1.30") as emulator:
        kubeconfig = emulator.write_kubeconfig(tmp_path / "kubeconfig")
        api = kubernetes.client.AppsV1Api(kubernetes.config.new_client_from_config(str(kubeconfig)))
        ...
        emulator.get("deployments", "default", "web")       # the stored object, as a dict
        emulator.fail_next(2, status=503, path="/deployments")  # the next 2 matching requests fail

It serves aiohttp from its own asyncio loop in a daemon thread. Storage, resourceVersions, watches,
patches, apply and validation live in `apiserver.ApiCore`; this module is the HTTP face: routing, bearer
token auth, fault injection, discovery, list paging, watch streaming, pod logs and the /scale subresource.
Nothing moves status by itself: run `controller.DeploymentController` for that.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from . import patching
from .apiserver import ApiCore, Denial, Obj, Written
from .selection import SelectorError, parse_field_selector, parse_label_selector
from .semantics import RESOURCES, SCALABLE, ApiError, ResourceType

log = logging.getLogger(__name__)
ANONYMOUS_PATHS = {"/version", "/version/", "/healthz", "/livez", "/readyz"}
DEFAULT_WATCH_TIMEOUT = 1800.0
ACCESS_REVIEW = "selfsubjectaccessreviews"
# Faults skip the emulated controllers' own traffic, so they reach the code under test.
INTERNAL_AGENTS = ("kube-controller-manager/",)
RECORDED = web.RequestKey("recorded", bool)  # a watch is recorded when it opens, not when it ends


@dataclass
class Fault:
    """A rule for the next `remaining` requests that match method and path substring."""

    remaining: int
    method: str | None
    path: str | None
    status: int = 500
    message: str | None = None
    delay: float = 0.0

    def matches(self, request: web.Request) -> bool:
        if request.headers.get("User-Agent", "").startswith(INTERNAL_AGENTS):
            return False
        return (
            self.remaining > 0
            and (self.method is None or self.method.upper() == request.method)
            and (self.path is None or self.path in request.path_qs)
        )


@dataclass(frozen=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    user_agent: str
    status: int
    at: float = 0.0  # time.time() when it was answered (a watch: when it opened)


@dataclass
class Route:
    rtype: ResourceType | None
    namespace: str | None
    name: str | None
    subresource: str | None
    group: str
    version: str


class KubeEmulator:
    def __init__(
        self,
        *,
        version: str = "1.30",
        token: str = "test-token",  # noqa: S107 - a fixed test credential
        validate_schema: bool = True,
        user: str = "slipway-test",
    ) -> None:
        self.version, self.token = version.lstrip("v"), token
        minor = int(self.version.split(".")[1].rstrip("+").split("-")[0])
        self.core = ApiCore(server_minor=minor, validate_schema=validate_schema, user=user)
        self.requests: deque[RequestRecord] = deque(maxlen=5000)
        self.bookmark_interval = 1.0  # seconds a watch that asked for bookmarks may stay silent (a real one: ~60)
        self._faults: list[Fault] = []
        self._faults_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    # --- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> KubeEmulator:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="kube-emulator", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Kubernetes emulator did not start")

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.SockSite(self._runner, self._socket).start())
        ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        if not self._loop or not self._thread:
            return
        self.core.close_all_watches()
        future = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop)
        try:
            future.result(timeout=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop = self._thread = None

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_kubeconfig(self, path: str | Path, token: str | None = None, namespace: str = "default") -> Path:
        """A kubeconfig for this server; `token=""` writes one without credentials."""
        token = self.token if token is None else token
        user: dict[str, Any] = {"token": token} if token else {}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "preferences": {},
            "clusters": [{"name": "slipway-emulator", "cluster": {"server": self.url}}],
            "users": [{"name": self.core.user, "user": user}],
            "contexts": [
                {
                    "name": "slipway-emulator",
                    "context": {
                        "cluster": "slipway-emulator",
                        "user": self.core.user,
                        "namespace": namespace,
                    },
                }
            ],
            "current-context": "slipway-emulator",
        }
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    # --- direct access for tests ----------------------------------------------------------------------

    def get(self, resource: str, namespace: str | None, name: str) -> Obj | None:
        try:
            return self.core.get(self.core.resource(resource), namespace, name)
        except ApiError:
            return None

    def list(self, resource: str, namespace: str | None = None, label_selector: str | None = None) -> list[Obj]:
        return self.core.list(self.core.resource(resource), namespace, parse_label_selector(label_selector))[0]

    def put(self, obj: Obj) -> Obj:
        """Create or overwrite an object as given (status too), notifying watches: a change behind the back"""
        return self.core.put(obj)

    def delete(self, resource: str, namespace: str | None, name: str) -> None:
        self.core.remove(self.core.resource(resource), namespace, name)

    def set_pod_log(
        self, namespace: str, pod: str, text: str, *, container: str | None = None, previous: bool = False
    ) -> None:
        """What the node's container runtime would have logged (kubelet logs are not API objects)."""
        if container is None:
            stored = self.get("pods", namespace, pod)
            container = stored["spec"]["containers"][0]["name"] if stored else ""
        with self.core.lock:
            self.core.logs[(namespace, pod, container, previous)] = text

    def deny(
        self,
        verb: str | None,
        resource: str | None,
        *,
        namespace: str | None = None,
        group: str | None = None,
    ) -> None:
        """Refuse verb on resource ("deployments", "pods/log"; None/"*" = any): 403s and access reviews."""
        self.core.denials.append(Denial(verb, resource, namespace, group))

    def fail_next(
        self,
        n: int = 1,
        status: int = 500,
        *,
        method: str | None = None,
        path: str | None = None,
        message: str | None = None,
    ) -> None:
        """The next n requests (matching method and a substring of the path+query) answer `status`."""
        with self._faults_lock:
            self._faults.append(Fault(n, method, path, status=status, message=message))

    def delay_next(
        self, n: int = 1, seconds: float = 1.0, *, method: str | None = None, path: str | None = None
    ) -> None:
        """The next n matching requests wait `seconds` before being served (client timeouts)."""
        if seconds <= 0:
            return
        with self._faults_lock:
            self._faults.append(Fault(n, method, path, status=0, delay=seconds))

    def reset(self) -> None:
        """Forget faults, denials and the request log (objects stay)."""
        with self._faults_lock:
            self._faults.clear()
        self.core.denials.clear()
        self.core.whole_object_apply = False
        self.bookmark_interval = 1.0
        self.requests.clear()

    # --- HTTP -----------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._serve_request(request)
        except ApiError as error:
            response = web.json_response(error.status(), status=error.code)
            if error.code in (429, 503):
                response.headers["Retry-After"] = "1"
        except Exception as error:  # an emulator bug must look like a server error, not hang the client
            log.exception("emulator failure on %s %s", request.method, request.path_qs)
            response = web.json_response(ApiError(500, f"emulator error: {error!r}").status(), status=500)
        if not request.get(RECORDED):
            self._record(request, response.status)
        return response

    def _record(self, request: web.Request, status: int) -> None:
        self.requests.append(
            RequestRecord(
                request.method,
                request.path,
                dict(request.query),
                request.headers.get("Content-Type", ""),
                request.headers.get("User-Agent", ""),
                status,
                time.time(),
            )
        )
        request[RECORDED] = True

    def _take_fault(self, request: web.Request, delays: bool) -> Fault | None:
        with self._faults_lock:
            for fault in self._faults:
                if (fault.delay > 0) == delays and fault.matches(request):
                    fault.remaining -= 1
                    return fault
        return None

    async def _serve_request(self, request: web.Request) -> web.StreamResponse:
        if delay := self._take_fault(request, delays=True):
            await asyncio.sleep(delay.delay)
        if fault := self._take_fault(request, delays=False):
            raise ApiError(fault.status, fault.message or f"injected failure ({fault.status})")
        self._authenticate(request)
        path = request.path
        if path in ("/version", "/version/"):
            return web.json_response(self._version_info())
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path.rstrip("/") in ("/api", "/apis"):
            return web.json_response(self._discovery_root(path.rstrip("/"), request.host))
        route = self._route(path)
        if route.name == ACCESS_REVIEW and request.method == "POST":
            return web.json_response(self.core.review_access(_json(await request.text())), status=201)
        if route.rtype is None:
            return web.json_response(self._resource_list(route.group, route.version))
        return await self._serve_resource(request, route)

    def _authenticate(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if header is None and request.path in ANONYMOUS_PATHS:
            return  # system:anonymous may read /version and health checks, as on a default cluster
        if header != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized")

    def _version_info(self) -> Obj:
        major, minor, *rest = self.version.split(".")
        patch = rest[0] if rest else "0"
        return {
            "major": major,
            "minor": minor,
            "gitVersion": f"v{major}.{minor}.{patch}",
            "gitCommit": "7c48c2bd72b9bf5c44d21d7338cc7bea77d0ad2a",
            "gitTreeState": "clean",
            "buildDate": "2024-05-14T10:42:02Z",
            "goVersion": "go1.22.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def _discovery_root(self, path: str, host: str) -> Obj:
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }
        groups: dict[str, str] = {r.group: r.version for r in RESOURCES if r.group}
        groups["authorization.k8s.io"] = "v1"
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": name,
                    "versions": [{"groupVersion": f"{name}/{version}", "version": version}],
                    "preferredVersion": {"groupVersion": f"{name}/{version}", "version": version},
                }
                for name, version in sorted(groups.items())
            ],
        }

    def _resource_list(self, group: str, version: str) -> Obj:
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        resources: list[Obj] = []
        for rtype in (r for r in RESOURCES if (r.group, r.version) == (group, version)):
            resources.append(
                {
                    "name": rtype.plural,
                    "singularName": rtype.kind.lower(),
                    "kind": rtype.kind,
                    "namespaced": rtype.namespaced,
                    "verbs": verbs,
                    "shortNames": list(rtype.short_names),
                }
            )
            subresources = (["status"] if rtype.has_status else []) + (["scale"] if rtype.plural in SCALABLE else [])
            subresources += ["log"] if rtype.plural == "pods" else []
            resources += [
                {
                    "name": f"{rtype.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": "Scale" if sub == "scale" else rtype.kind,
                    "verbs": ["get", "patch", "update"],
                }
                for sub in subresources
            ]
        if group == "authorization.k8s.io":
            resources.append(
                {
                    "name": ACCESS_REVIEW,
                    "singularName": "",
                    "namespaced": False,
                    "kind": "SelfSubjectAccessReview",
                    "verbs": ["create"],
                }
            )
        group_version = f"{group}/{version}" if group else version
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }

    def _route(self, path: str) -> Route:
        parts = [part for part in path.split("/") if part]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource")
        served = {r.plural: r for r in RESOURCES if (r.group, r.version) == (group, version)}
        is_review = (group, version) == ("authorization.k8s.io", "v1")
        if not served and not is_review:
            raise ApiError(404, "the server could not find the requested resource")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in served:
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return Route(None, None, None, None, group, version)
        if is_review and rest == [ACCESS_REVIEW]:
            return Route(None, None, ACCESS_REVIEW, None, group, version)
        rtype = served.get(rest[0])
        if rtype is None or len(rest) > 3 or (namespace and not rtype.namespaced):
            raise ApiError(404, "the server could not find the requested resource")
        if rtype.namespaced and len(rest) > 1 and namespace is None:
            raise ApiError(404, "the server could not find the requested resource")
        return Route(
            rtype,
            namespace,
            rest[1] if len(rest) > 1 else None,
            rest[2] if len(rest) > 2 else None,
            group,
            version,
        )

    async def _serve_resource(self, request: web.Request, route: Route) -> web.StreamResponse:
        method, rtype = request.method, route.rtype
        assert rtype is not None
        if route.name is None:
            return await self._serve_collection(request, route)
        if route.subresource not in (None, "status", "scale", "log", "binding"):
            raise ApiError(404, "the server could not find the requested resource")
        if route.subresource == "binding" and rtype.plural == "pods" and method == "POST":
            self.core.authorize("create", rtype, route.namespace, route.name, "binding")
            binding = self.core.bind(route.namespace or "", route.name, _json(await request.text()))
            return web.json_response(binding, status=201)
        if route.subresource == "log" and rtype.plural == "pods" and method == "GET":
            return self._pod_log(request, route)
        if route.subresource == "scale" and rtype.plural in SCALABLE:
            return await self._scale(request, route)
        if route.subresource == "status" and not rtype.has_status:
            raise ApiError(404, "the server could not find the requested resource")
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(method)
        if verb is None or (route.subresource and method == "DELETE"):
            raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")
        self.core.authorize(verb, rtype, route.namespace, route.name, route.subresource)
        return await self._serve_item(request, route, verb)

    async def _serve_item(self, request: web.Request, route: Route, verb: str) -> web.StreamResponse:
        rtype, query = route.rtype, request.query
        assert rtype is not None and route.name is not None
        dry_run, manager = query.get("dryRun") == "All", self._manager(request)
        strictness = query.get("fieldValidation", "Warn")
        if verb == "get":
            return web.json_response(_typed(rtype, self.core.get(rtype, route.namespace, route.name)))
        if verb == "delete":
            options = json.loads(await request.text() or "{}")
            for key in ("propagationPolicy", "gracePeriodSeconds"):
                if key in query:
                    options[key] = query[key]
            return web.json_response(
                _typed(rtype, self.core.delete(rtype, route.namespace, route.name, options, dry_run))
            )
        body = await request.text()
        if verb == "update":
            written = self.core.replace(
                rtype,
                route.namespace,
                route.name,
                _json(body),
                manager=manager,
                subresource=route.subresource,
                dry_run=dry_run,
                strictness=strictness,
            )
        else:
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            written = self.core.patch(
                rtype,
                route.namespace,
                route.name,
                body,
                content_type,
                manager=manager,
                subresource=route.subresource,
                dry_run=dry_run,
                force=query.get("force") == "true",
                strictness=strictness,
            )
        return _written_response(rtype, written, 200)

    async def _serve_collection(self, request: web.Request, route: Route) -> web.StreamResponse:
        rtype, query, method = route.rtype, request.query, request.method
        assert rtype is not None
        if method == "POST":
            if rtype.namespaced and route.namespace is None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            self.core.authorize("create", rtype, route.namespace, None)
            written = self.core.create(
                rtype,
                route.namespace,
                _json(await request.text()),
                manager=self._manager(request),
                dry_run=query.get("dryRun") == "All",
                strictness=query.get("fieldValidation", "Warn"),
            )
            return _written_response(rtype, written, 201)
        try:
            matches = _combine(
                parse_label_selector(query.get("labelSelector")),
                parse_field_selector(query.get("fieldSelector"), rtype.kind),
            )
        except SelectorError as error:
            raise ApiError(400, str(error)) from error
        if method == "GET" and query.get("watch") in ("true", "1"):
            self.core.authorize("watch", rtype, route.namespace, None)
            return await self._watch(request, rtype, route.namespace, matches)
        if method == "GET":
            self.core.authorize("list", rtype, route.namespace, None)
            return web.json_response(self._list_body(rtype, route.namespace, matches, query))
        if method == "DELETE":
            self.core.authorize("deletecollection", rtype, route.namespace, None)
            items, revision = self.core.list(rtype, route.namespace, matches)
            for item in items:
                self.core.delete(rtype, item["metadata"].get("namespace"), item["metadata"]["name"])
            return web.json_response(_list(rtype, items, str(revision)))
        raise ApiError(405, f"the server does not allow this method on the requested resource ({method})")

    def _list_body(self, rtype: ResourceType, namespace: str | None, matches: Callable[[Obj], bool], query: Any) -> Obj:
        items, revision = self.core.list(rtype, namespace, matches)
        offset, list_revision = 0, str(revision)
        if token := query.get("continue"):
            try:
                offset, list_revision = json.loads(base64.b64decode(token))
            except ValueError as error:
                raise ApiError(400, "continue key is not valid") from error
        limit = int(query.get("limit") or 0)
        page = items[offset : offset + limit] if limit else items[offset:]
        body = _list(rtype, page, list_revision)
        if limit and offset + limit < len(items):
            body["metadata"]["continue"] = base64.b64encode(
                json.dumps([offset + limit, list_revision]).encode()
            ).decode()
            body["metadata"]["remainingItemCount"] = len(items) - offset - limit
        return body

    async def _watch(
        self, request: web.Request, rtype: ResourceType, namespace: str | None, matches: Callable[[Obj], bool]
    ) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        timeout = float(request.query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT)
        bookmarks = request.query.get("allowWatchBookmarks") in ("true", "1")
        watcher = self.core.open_watch(loop, rtype, namespace, matches, request.query.get("resourceVersion"))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        deadline = loop.time() + timeout
        try:
            await response.prepare(request)
            self._record(request, response.status)  # now: a watch may stay open for minutes
            while (remaining := deadline - loop.time()) > 0:
                wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks:  # idle: tell the client how far it is up to date, as the watch cache does
                        await response.write(json.dumps(self._bookmark(rtype)).encode() + b"\n")
                    continue
                if event is None:
                    break
                await response.write(json.dumps(event).encode() + b"\n")
            await response.write_eof()
        except (ConnectionResetError, RuntimeError):
            pass  # the client went away
        finally:
            self.core.close_watch(watcher)
        return response

    def _bookmark(self, rtype: ResourceType) -> Obj:
        with self.core.lock:
            revision = self.core.revision
        metadata = {"resourceVersion": str(revision)}
        return {
            "type": "BOOKMARK",
            "object": {"kind": rtype.kind, "apiVersion": rtype.api_version, "metadata": metadata},
        }

    def expire_watches(self) -> int:
        """Every open watch ends with 410 Gone, as after an etcd compaction; see ApiCore.expire_watches."""
        return self.core.expire_watches()

    def _pod_log(self, request: web.Request, route: Route) -> web.Response:
        rtype = route.rtype
        assert rtype is not None and route.name is not None and route.namespace is not None
        self.core.authorize("get", rtype, route.namespace, route.name, "log")
        pod = self.core.get(rtype, route.namespace, route.name)
        text = self.core.pod_log(
            route.namespace, pod, request.query.get("container"), request.query.get("previous") == "true"
        )
        if tail := request.query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        if limit := request.query.get("limitBytes"):
            text = text.encode()[: int(limit)].decode(errors="ignore")
        return web.Response(text=text, content_type="text/plain")

    async def _scale(self, request: web.Request, route: Route) -> web.Response:
        rtype, method = route.rtype, request.method
        assert rtype is not None and route.name is not None
        verb = {"GET": "get", "PUT": "update", "PATCH": "patch"}.get(method)
        if verb is None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        self.core.authorize(verb, rtype, route.namespace, route.name, "scale")
        current = self.core.get(rtype, route.namespace, route.name)
        if method != "GET":
            scale = _scale_of(current)
            body = await request.text()
            if method == "PUT":
                scale = _json(body)
            else:
                content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
                scale = _patch_document(scale, body, content_type)
            current["spec"]["replicas"] = int(scale.get("spec", {}).get("replicas", 0))
            current, _ = self.core.replace(
                rtype,
                route.namespace,
                route.name,
                current,
                manager=self._manager(request),
                subresource="scale",
            )
        return web.json_response(_scale_of(current))

    @staticmethod
    def _manager(request: web.Request) -> str:
        """fieldManager, or (as a real server does) the User-Agent's program name."""
        return request.query.get("fieldManager") or request.headers.get("User-Agent", "unknown").split("/")[0]


# --- helpers ----------------------------------------------------------------------------------------


def _json(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise ApiError(400, f"the body of the request could not be decoded: {error}") from error


def _patch_document(target: Obj, body: str, content_type: str) -> Obj:
    document = _json(body)
    if content_type == "application/json-patch+json":
        return patching.json_patch(target, document)
    if content_type == "application/merge-patch+json":
        return patching.json_merge_patch(target, document)
    return patching.strategic_merge(target, document)


def _combine(*predicates: Callable[[Obj], bool]) -> Callable[[Obj], bool]:
    return lambda obj: all(predicate(obj) for predicate in predicates)


def _typed(rtype: ResourceType, obj: Obj) -> Obj:
    if obj.get("kind") == "Status":
        return obj
    return {"kind": rtype.kind, "apiVersion": rtype.api_version, **obj}


def _list(rtype: ResourceType, items: list[Obj], revision: str) -> Obj:
    for item in items:  # a real server leaves kind/apiVersion off list items
        item.pop("kind", None)
        item.pop("apiVersion", None)
    return {
        "kind": f"{rtype.kind}List",
        "apiVersion": rtype.api_version,
        "metadata": {"resourceVersion": revision},
        "items": items,
    }


def _written_response(rtype: ResourceType, written: Written, status: int) -> web.Response:
    obj, warnings = written
    response = web.json_response(_typed(rtype, obj), status=status)
    for warning in warnings:
        escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{escaped}"')
    return response


def _scale_of(obj: Obj) -> Obj:
    meta = obj["metadata"]
    labels = (obj["spec"].get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": obj["spec"].get("replicas", 0)},
        "status": {
            "replicas": obj.get("status", {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in labels.items()),
        },
    }


def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, message: str = "condition"
) -> Any:
    """Poll until `condition()` is truthy; returns its value (a helper for tests)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


__all__ = ["ApiError", "KubeEmulator", "RequestRecord", "wait_for"]
