"""The few Kubernetes API calls a rollout needs, as plain dicts, with errors sorted into permanent and transient.

Every call has a timeout; transient failures (5xx, 429, timeouts, refused connections) are retried with
exponential backoff and logged, and become TransientTargetError once `retries` retries are spent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .base import LogFn, TargetError, TransientTargetError
from .kubeconfig import load_api_client

__all__ = ["KubeApi", "describe_api_error", "load_client"]

Obj = dict[str, Any]
TRANSIENT_STATUSES = {408, 429, 500, 502, 503, 504}
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"
KINDS = ("Service", "Deployment", "HorizontalPodAutoscaler")


def _quiet(_: str) -> None:
    pass


def load_client() -> None:
    """Import the client's API classes, which it imports lazily on first use: each builds validators for
    hundreds of methods (a second or more of CPU). A rollouts worker does it when it starts, rather than
    while its first rollout waits."""
    for name in ("CoreV1Api", "AppsV1Api", "AutoscalingV2Api", "AuthorizationV1Api", "VersionApi"):
        getattr(client, name)  # the first access imports it


def describe_api_error(error: BaseException) -> str:
    """The server's own message when it sent a Status, else the exception's text, on one line."""
    if isinstance(error, ApiException):
        message = ""
        if error.body:
            try:
                message = json.loads(error.body).get("message", "")
            except (ValueError, AttributeError):
                message = str(error.body)[:300]
        status = f"{error.status} {error.reason or ''}".strip()
        return f"{status}: {message}" if message else status
    text = str(error).strip() or type(error).__name__
    return " ".join(text.split())[:500]


class KubeApi:
    def __init__(
        self,
        kubeconfig: str,
        namespace: str,
        *,
        request_timeout: float,
        retries: int,
        backoff: float,
    ) -> None:
        self.namespace = namespace
        self.request_timeout, self.retries, self.backoff = request_timeout, retries, backoff
        self.api_client = load_api_client(kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.apps = client.AppsV1Api(self.api_client)
        self.autoscaling = client.AutoscalingV2Api(self.api_client)
        self.authorization = client.AuthorizationV1Api(self.api_client)
        self.version_api = client.VersionApi(self.api_client)

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        self.api_client.close()

    # --- the retry loop ---------------------------------------------------------------------------

    def call(
        self, what: str, fn: Callable[..., Any], *args: Any, log: LogFn = _quiet, text: bool = False, **kwargs: Any
    ) -> Any:
        """fn(*args, **kwargs) with the timeout, retried on transient errors: the JSON body (or the text)."""
        kwargs.setdefault("_request_timeout", self.request_timeout)
        kwargs.setdefault("_preload_content", False)
        for attempt in range(self.retries + 1):
            try:
                return _decode(fn(*args, **kwargs).data, text, what)
            except ApiException as error:
                if error.status not in TRANSIENT_STATUSES:
                    raise
                last: BaseException = error
            except (urllib3.exceptions.HTTPError, OSError) as error:
                last = error
            if attempt < self.retries:
                delay = self.backoff * 2**attempt
                log(f"Kubernetes API error while {what} ({describe_api_error(last)}); retry in {delay:.1f} s")
                time.sleep(delay)
        raise TransientTargetError(
            f"The Kubernetes API at {self.server} failed while {what}, {self.retries + 1} times: "
            f"{describe_api_error(last)}"
        )

    def permanent(self, what: str, error: ApiException) -> TargetError:
        """A user-facing TargetError for an ApiException that is not worth retrying."""
        detail = describe_api_error(error)
        if not error.status:  # the client raises status 0 for TLS failures (a wrong CA, a wrong host name)
            reason = " ".join(str(error.reason or "").split())
            return TargetError(f"Cannot talk to the Kubernetes API at {self.server} while {what}: {reason}")
        if error.status == 401:
            return TargetError(f"The cluster refused Slipway's credentials while {what}: {detail}")
        if error.status == 403:
            return TargetError(f"Slipway is not allowed to do this while {what}: {detail}")
        return TargetError(f"The Kubernetes API refused {what}: {detail}")

    def checked(self, what: str, fn: Callable[..., Any], *args: Any, log: LogFn = _quiet, **kwargs: Any) -> Any:
        """call(), with permanent API errors turned into TargetError."""
        try:
            return self.call(what, fn, *args, log=log, **kwargs)
        except ApiException as error:
            raise self.permanent(what, error) from None

    def optional(self, what: str, fn: Callable[..., Any], *args: Any, log: LogFn = _quiet, **kwargs: Any) -> Any:
        """checked(), with 404 as None."""
        try:
            return self.call(what, fn, *args, log=log, **kwargs)
        except ApiException as error:
            if error.status == 404:
                return None
            raise self.permanent(what, error) from None

    # --- verbs ------------------------------------------------------------------------------------

    def version(self) -> Obj:
        version: Obj = self.checked("reading the server version", self.version_api.get_code)
        return version

    def get(self, kind: str, name: str, *, log: LogFn = _quiet) -> Obj | None:
        reader = {
            "Deployment": self.apps.read_namespaced_deployment,
            "Service": self.core.read_namespaced_service,
            "HorizontalPodAutoscaler": self.autoscaling.read_namespaced_horizontal_pod_autoscaler,
        }[kind]
        found: Obj | None = self.optional(f"reading {kind} {name}", reader, name, self.namespace, log=log)
        return found

    def labelled(self, kind: str, selector: str, *, log: LogFn = _quiet) -> list[Obj]:
        """The objects of a kind whose labels match the selector (a label selector string)."""
        lister = {
            "Deployment": self.apps.list_namespaced_deployment,
            "Service": self.core.list_namespaced_service,
            "HorizontalPodAutoscaler": self.autoscaling.list_namespaced_horizontal_pod_autoscaler,
        }[kind]
        found = self.checked(f"listing {kind} objects", lister, self.namespace, label_selector=selector, log=log)
        return found.get("items") or []

    def apply(self, obj: Obj, *, manager: str, log: LogFn = _quiet) -> Obj:
        kind, name = obj["kind"], obj["metadata"]["name"]
        patcher = {
            "Deployment": self.apps.patch_namespaced_deployment,
            "Service": self.core.patch_namespaced_service,
            "HorizontalPodAutoscaler": self.autoscaling.patch_namespaced_horizontal_pod_autoscaler,
        }[kind]
        applied: Obj = self.checked(
            f"applying {kind} {name}",
            patcher,
            name,
            self.namespace,
            obj,
            field_manager=manager,
            force=True,
            _content_type=APPLY_CONTENT_TYPE,
            log=log,
        )
        return applied

    def delete(self, kind: str, name: str, *, log: LogFn = _quiet) -> bool:
        """True when something was deleted, False when it did not exist."""
        deleter = {
            "Deployment": self.apps.delete_namespaced_deployment,
            "Service": self.core.delete_namespaced_service,
            "HorizontalPodAutoscaler": self.autoscaling.delete_namespaced_horizontal_pod_autoscaler,
        }[kind]
        deleted = self.optional(
            f"deleting {kind} {name}", deleter, name, self.namespace, propagation_policy="Background", log=log
        )
        return deleted is not None

    def pods(self, selector: str, *, log: LogFn = _quiet) -> list[Obj]:
        found = self.checked(
            "listing pods", self.core.list_namespaced_pod, self.namespace, label_selector=selector, log=log
        )
        return found.get("items") or []

    def replicasets(self, selector: str, *, log: LogFn = _quiet) -> list[Obj]:
        found = self.checked(
            "listing replica sets",
            self.apps.list_namespaced_replica_set,
            self.namespace,
            label_selector=selector,
            log=log,
        )
        return found.get("items") or []

    def lister(self, kind: str) -> Callable[..., Any]:
        return {"Deployment": self.apps.list_namespaced_deployment, "Pod": self.core.list_namespaced_pod}[kind]

    def list_with_version(self, kind: str, *, selectors: dict[str, str], log: LogFn = _quiet) -> tuple[list[Obj], str]:
        """The matching objects and the list's resourceVersion (where a watch of them starts)."""
        found = self.checked(f"listing {kind.lower()}s", self.lister(kind), self.namespace, **selectors, log=log)
        return found.get("items") or [], str((found.get("metadata") or {}).get("resourceVersion") or "")

    def open_watch(self, kind: str, *, selectors: dict[str, str], resource_version: str, seconds: int) -> Any:
        """The streaming response of a watch from resource_version, with bookmarks, that the server ends
        after `seconds`. Raises ApiException (a refused watch) or urllib3/OS errors, unretried."""
        return self.lister(kind)(
            self.namespace,
            **selectors,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=seconds,
            _preload_content=False,
            # Bookmarks or the server's own end come well within this; silence past it is a dead connection.
            _request_timeout=(self.request_timeout, seconds + max(self.request_timeout, 30)),
        )

    def events(self, *, log: LogFn = _quiet) -> list[Obj]:
        found = self.checked("listing events", self.core.list_namespaced_event, self.namespace, log=log)
        return found.get("items") or []

    def pod_log(self, pod: str, container: str, *, previous: bool, tail: int, log: LogFn = _quiet) -> str:
        """The container's last lines, or a note saying why there are none (logs are a diagnostic)."""
        try:
            response: str = self.call(
                f"reading the log of pod {pod}",
                self.core.read_namespaced_pod_log,
                pod,
                self.namespace,
                container=container,
                previous=previous,
                tail_lines=tail,
                log=log,
                text=True,
            )
        except ApiException as error:
            return f"(no log: {describe_api_error(error)})"
        except TransientTargetError as error:
            return f"(no log: {error})"
        return response

    def namespace_exists(self) -> bool | None:
        """None when the credentials may not read Namespaces (common for namespace-scoped accounts)."""
        try:
            self.call("reading the namespace", self.core.read_namespace, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return False
            if error.status == 403:
                return None
            raise self.permanent("reading the namespace", error) from None
        return True

    def allowed(self, verb: str, group: str, resource: str, subresource: str = "") -> bool:
        attributes = client.V1ResourceAttributes(
            namespace=self.namespace, verb=verb, group=group, resource=resource, subresource=subresource or None
        )
        review = client.V1SelfSubjectAccessReview(
            api_version="authorization.k8s.io/v1",
            kind="SelfSubjectAccessReview",
            spec=client.V1SelfSubjectAccessReviewSpec(resource_attributes=attributes),
        )
        answer = self.checked(
            f"asking whether Slipway may {verb} {resource}",
            self.authorization.create_self_subject_access_review,
            review,
        )
        return bool((answer.get("status") or {}).get("allowed"))


def _decode(data: bytes, text: bool, what: str) -> Any:
    body = data.decode("utf-8", errors="replace")
    if text:
        return body
    try:
        return json.loads(body) if body.strip() else {}
    except ValueError:
        raise TargetError(
            f"The Kubernetes API answered {what} with something that is not JSON: {body[:200]!r}"
        ) from None
