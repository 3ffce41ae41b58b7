"""The API server's storage and verbs, independent of HTTP: thread-safe, usable from tests directly.

Every write goes through `_commit`, which stamps a new resourceVersion from one global counter, keeps a
bounded event history (so watches can resume from a resourceVersion, or get 410 Expired) and fans the
event out to open watches.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from . import patching, semantics
from .semantics import RESOURCES, ApiError, ResourceType, not_found

Obj = dict[str, Any]
Written = tuple[Obj, list[str]]  # the stored object and the warnings for the Warning header
HISTORY_LIMIT = 5000
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVER_SET_METADATA = (
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
)
RETURNS_DELETED_OBJECT = {"pods", "services", "namespaces"}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(length))


def success_status(rtype: ResourceType, obj: Obj) -> Obj:
    meta = obj["metadata"]
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": meta["name"], "group": rtype.group, "kind": rtype.plural, "uid": meta["uid"]},
    }


@dataclass
class Event:
    revision: int
    type: str
    rtype: ResourceType
    obj: Obj
    old: Obj | None = None


@dataclass(eq=False)
class Watcher:
    """One open watch: events are handed to its asyncio queue from whichever thread wrote them."""

    loop: asyncio.AbstractEventLoop
    rtype: ResourceType
    namespace: str | None
    matches: Callable[[Obj], bool]
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def put(self, item: Obj | None) -> None:
        with suppress(RuntimeError):  # the loop is already closed: the emulator is stopping
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def offer(self, event: Event) -> None:
        """Translate the event through this watch's selectors, as the real watch cache does."""
        if event.rtype != self.rtype:
            return
        if self.namespace and event.obj["metadata"].get("namespace") != self.namespace:
            return
        now_matches = self.matches(event.obj)
        was_matching = event.old is not None and self.matches(event.old)
        kind = event.type
        if kind == "MODIFIED" and now_matches != was_matching:
            kind = "ADDED" if now_matches else "DELETED"
        elif not now_matches and not (kind == "MODIFIED" and was_matching):
            return
        obj = copy.deepcopy(event.obj)
        obj.setdefault("kind", self.rtype.kind)
        obj.setdefault("apiVersion", self.rtype.api_version)
        self.put({"type": kind, "object": obj})


@dataclass
class Denial:
    verb: str | None
    resource: str | None
    namespace: str | None
    group: str | None

    def covers(self, verb: str, resource: str, namespace: str | None, group: str) -> bool:
        return all(
            wanted in (None, "*", actual)
            for wanted, actual in (
                (self.verb, verb),
                (self.resource, resource),
                (self.namespace, namespace),
                (self.group, group),
            )
        )


class ApiCore:
    def __init__(self, server_minor: int = 30, validate_schema: bool = True, user: str = "slipway-test"):
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.revision = 1000
        self.history: deque[Event] = deque(maxlen=HISTORY_LIMIT)
        self.compacted_revision = 0  # watches from an older resourceVersion get 410 Gone (see expire_watches)
        self.watchers: set[Watcher] = set()
        self.logs: dict[tuple[str, str, str, bool], str] = {}
        self.denials: list[Denial] = []
        self.server_minor, self.validate_schema, self.user = server_minor, validate_schema, user
        # False: server-side apply as a real API server does it, fields owned per manager (managedFields).
        # True: each apply is taken as the whole object (what some independent servers do): what the
        # applied configuration leaves out is reset, whoever set it.
        self.whole_object_apply = False
        self._ips = itertools.count(10)
        for namespace in DEFAULT_NAMESPACES:
            self.create(self.resource("namespaces"), None, {"metadata": {"name": namespace}}, manager="kube-apiserver")

    # --- lookup ---------------------------------------------------------------------------------------

    @staticmethod
    def resource(name: str) -> ResourceType:
        """A served resource by plural, kind or short name ("deployments", "Deployment", "deploy")."""
        lowered = name.lower()
        for rtype in RESOURCES:
            if lowered in (rtype.plural, rtype.kind.lower(), *rtype.short_names):
                return rtype
        raise KeyError(f"the emulator does not serve {name!r}")

    def _key(self, rtype: ResourceType, namespace: str | None, name: str) -> tuple[str, str, str]:
        return rtype.plural, (namespace or "") if rtype.namespaced else "", name

    def _existing(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.objects.get(self._key(rtype, namespace, name))
        if obj is None:
            raise not_found(rtype, name)
        return obj

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        with self.lock:
            return copy.deepcopy(self._existing(rtype, namespace, name))

    def list(
        self, rtype: ResourceType, namespace: str | None, matches: Callable[[Obj], bool] = lambda _: True
    ) -> tuple[list[Obj], int]:
        with self.lock:
            items = [
                copy.deepcopy(obj)
                for (plural, obj_namespace, _), obj in sorted(self.objects.items())
                if plural == rtype.plural and (not namespace or obj_namespace == namespace) and matches(obj)
            ]
            return items, self.revision

    # --- commit & watch -------------------------------------------------------------------------------

    def _commit(self, rtype: ResourceType, obj: Obj, kind: str, old: Obj | None) -> Obj:
        self.revision += 1
        obj["metadata"]["resourceVersion"] = str(self.revision)
        key = self._key(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if kind == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        event = Event(self.revision, kind, rtype, copy.deepcopy(obj), old)
        self.history.append(event)
        for watcher in list(self.watchers):
            watcher.offer(event)
        return copy.deepcopy(obj)

    def open_watch(
        self,
        loop: asyncio.AbstractEventLoop,
        rtype: ResourceType,
        namespace: str | None,
        matches: Callable[[Obj], bool],
        since: str | None,
    ) -> Watcher:
        watcher = Watcher(loop, rtype, namespace, matches)
        with self.lock:
            if since in (None, "", "0"):
                for obj in self.list(rtype, namespace)[0]:
                    watcher.offer(Event(self.revision, "ADDED", rtype, obj))
            else:
                self._replay(watcher, since)
            self.watchers.add(watcher)
        return watcher

    def _replay(self, watcher: Watcher, since: str) -> None:
        try:
            revision = int(since)
        except ValueError as error:
            raise ApiError(400, f'invalid resource version "{since}"') from error
        oldest = self.history[0].revision if self.history else self.revision + 1
        if revision < self.compacted_revision or (len(self.history) == self.history.maxlen and revision < oldest - 1):
            expired = ApiError(410, f"too old resource version: {revision} ({oldest - 1})", reason="Expired")
            watcher.put({"type": "ERROR", "object": expired.status()})
            watcher.put(None)  # a real server ends the watch after the error
            return
        for event in self.history:
            if event.revision > revision:
                watcher.offer(event)

    def close_watch(self, watcher: Watcher) -> None:
        with self.lock:
            self.watchers.discard(watcher)

    def expire_watches(self) -> int:
        """Compact the history as etcd does: every open watch ends with 410 Gone ("too old resource
        version"), and so does any new one from an older resourceVersion, until its client lists again.
        Returns how many watches were open."""
        with self.lock:
            self.compacted_revision = self.revision
            self.history.clear()
            expired = ApiError(410, f"too old resource version (compacted at {self.revision})", reason="Expired")
            for watcher in self.watchers:
                watcher.put({"type": "ERROR", "object": expired.status()})
                watcher.put(None)
            count = len(self.watchers)
            self.watchers.clear()
            return count

    def close_all_watches(self) -> None:
        with self.lock:
            for watcher in self.watchers:
                watcher.put(None)
            self.watchers.clear()

    # --- authorization --------------------------------------------------------------------------------

    def is_allowed(self, verb: str, resource: str, namespace: str | None, group: str) -> bool:
        return not any(denial.covers(verb, resource, namespace, group) for denial in self.denials)

    def authorize(
        self,
        verb: str,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        subresource: str | None = None,
    ) -> None:
        resource = f"{rtype.plural}/{subresource}" if subresource else rtype.plural
        if self.is_allowed(verb, resource, namespace, rtype.group):
            return
        target = f'{rtype.qualified} "{name}"' if name else rtype.qualified
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        raise ApiError(
            403,
            f'{target} is forbidden: User "{self.user}" cannot {verb} resource "{resource}" in '
            f'API group "{rtype.group}"{where}',
            name=name,
            group=rtype.group,
            kind=rtype.plural,
        )

    def review_access(self, review: Obj) -> Obj:
        """SelfSubjectAccessReview: allowed unless a test denied the verb/resource."""
        attrs = review.get("spec", {}).get("resourceAttributes")
        allowed = True
        if attrs:
            resource = attrs.get("resource", "")
            if attrs.get("subresource"):
                resource += "/" + attrs["subresource"]
            allowed = self.is_allowed(
                attrs.get("verb", ""), resource, attrs.get("namespace") or None, attrs.get("group", "")
            )
        status = {"allowed": allowed} if allowed else {"allowed": False, "reason": "denied by the emulator"}
        return {
            **review,
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": None, **review.get("metadata", {})},
            "status": status,
        }

    # --- create ---------------------------------------------------------------------------------------

    def _body(self, rtype: ResourceType, namespace: str | None, body: Any, name: str | None = None) -> Obj:
        if not isinstance(body, dict):
            raise ApiError(400, f"the body of the request must be a {rtype.kind} object")
        obj = copy.deepcopy(body)
        obj["apiVersion"], obj["kind"] = (
            obj.get("apiVersion") or rtype.api_version,
            obj.get("kind") or rtype.kind,
        )
        if (obj["apiVersion"], obj["kind"]) != (rtype.api_version, rtype.kind):
            raise ApiError(
                400,
                f"the API version in the data ({obj['apiVersion']}) does not match the expected "
                f"API version ({rtype.api_version})"
                if obj["kind"] == rtype.kind
                else f'{obj["kind"]} in version "{rtype.version}" cannot be handled as a {rtype.kind}',
            )
        meta = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        if rtype.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
        if name is not None and meta.get("name") not in (None, name):
            raise ApiError(
                400,
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})",
            )
        if name is not None:
            meta["name"] = name
        return obj

    def _check(self, rtype: ResourceType, obj: Obj, old: Obj | None, strictness: str) -> list[str]:
        unknown = semantics.schema_check(obj, self.server_minor) if self.validate_schema else []
        if unknown and strictness == "Strict":
            raise ApiError(400, "strict decoding error: " + ", ".join(f'unknown field "{p}"' for p in unknown))
        semantics.validate(rtype, obj, old)
        return [] if strictness == "Ignore" else [f'unknown field "{path}"' for path in unknown]

    def create(
        self,
        rtype: ResourceType,
        namespace: str | None,
        body: Any,
        *,
        manager: str,
        dry_run: bool = False,
        strictness: str = "Warn",
        operation: str = "Update",
    ) -> Written:
        obj = self._body(rtype, namespace, body)
        claimed = patching.field_paths(_subresource_part(rtype, obj, None)) if operation == "Apply" else None
        meta = obj["metadata"]
        for server_field in SERVER_SET_METADATA:
            meta.pop(server_field, None)
        with self.lock:
            if rtype.namespaced and ("namespaces", "", namespace) not in self.objects:
                raise ApiError(404, f'namespaces "{namespace}" not found', name=namespace, kind="namespaces")
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = meta["generateName"] + random_suffix()
            if self._key(rtype, namespace, meta.get("name", "")) in self.objects:
                raise ApiError(
                    409,
                    f'{rtype.qualified} "{meta["name"]}" already exists',
                    reason="AlreadyExists",
                    name=meta["name"],
                    group=rtype.group,
                    kind=rtype.plural,
                )
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_iso())
            if rtype.tracks_generation:
                meta["generation"] = 1
            semantics.apply_defaults(obj, self._allocate_ip)
            if rtype.has_status:
                obj["status"] = semantics.initial_status(obj)
            warnings = self._check(rtype, obj, None, strictness)
            self._record_fields(rtype, obj, {}, manager, operation, None, claimed)
            return (copy.deepcopy(obj) if dry_run else self._commit(rtype, obj, "ADDED", None)), warnings

    def _allocate_ip(self) -> str:
        number = next(self._ips)
        return f"10.96.{number // 250}.{number % 250 + 1}"

    # --- update, patch, apply -------------------------------------------------------------------------

    def replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        manager: str,
        subresource: str | None = None,
        dry_run: bool = False,
        strictness: str = "Warn",
    ) -> Written:
        with self.lock:
            old = self._existing(rtype, namespace, name)
            obj = self._body(rtype, namespace, body, name)
            self._check_precondition(rtype, old, obj)
            return self._update(rtype, old, obj, manager, "Update", subresource, dry_run, strictness)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: str,
        content_type: str,
        *,
        manager: str,
        subresource: str | None = None,
        dry_run: bool = False,
        force: bool = False,
        strictness: str = "Warn",
    ) -> Written:
        if content_type.startswith("application/apply-patch"):
            return self.apply(
                rtype,
                namespace,
                name,
                body,
                manager=manager,
                subresource=subresource,
                dry_run=dry_run,
                force=force,
            )
        patchers: dict[str, Callable[[Any, Any], Any]] = {
            "application/json-patch+json": patching.json_patch,
            "application/merge-patch+json": patching.json_merge_patch,
            "application/strategic-merge-patch+json": patching.strategic_merge,
        }
        if content_type not in patchers:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(patchers)}, application/apply-patch+yaml",
            )
        document = _load(body, yaml_allowed=False)
        with self.lock:
            old = self._existing(rtype, namespace, name)
            try:
                patched = patchers[content_type](copy.deepcopy(old), document)
            except (patching.PatchError, TypeError, KeyError, AttributeError) as error:
                raise ApiError(422, str(error)) from error
            obj = self._body(rtype, namespace, patched, name)
            self._check_precondition(rtype, old, obj)
            return self._update(rtype, old, obj, manager, "Update", subresource, dry_run, strictness)

    def apply(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: str,
        *,
        manager: str,
        subresource: str | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> Written:
        if not manager:
            raise ApiError(400, "PATCH request: fieldManager is required for apply requests")
        applied = self._body(rtype, namespace, _load(body, yaml_allowed=True), name)
        with self.lock:
            old = self.objects.get(self._key(rtype, namespace, name))
            if old is None:
                if subresource:
                    raise not_found(rtype, name)
                return self.create(
                    rtype,
                    namespace,
                    applied,
                    manager=manager,
                    dry_run=dry_run,
                    strictness="Strict",
                    operation="Apply",
                )
            config = _subresource_part(rtype, applied, subresource)
            claimed = patching.field_paths(config)
            if self.whole_object_apply and not subresource:
                return self._update(
                    rtype, old, _as_whole_object(old, config), manager, "Apply", None, dry_run, "Strict", claimed, force
                )
            self._raise_conflicts(old, config, claimed, manager, subresource, force)
            mine = _entry_paths(old, manager, "Apply", subresource)
            others = set().union(*(_paths(e) for e in _entries(old) if not _same(e, manager, "Apply", subresource)))
            result = copy.deepcopy(old)
            for path in sorted(mine - claimed - others, key=lambda p: (len(p), p[-1] != "."), reverse=True):
                patching.remove_path(result, path)
            result = patching.strategic_merge(result, config)
            return self._update(
                rtype,
                old,
                result,
                manager,
                "Apply",
                subresource,
                dry_run,
                "Strict",
                claimed=claimed,
                force=force,
            )

    def _raise_conflicts(
        self,
        old: Obj,
        config: Obj,
        claimed: set[patching.Path],
        manager: str,
        subresource: str | None,
        force: bool,
    ) -> None:
        if force:
            return
        conflicts = sorted(
            {
                (entry["manager"], path)
                for entry in _entries(old)
                if not _same(entry, manager, "Apply", subresource)
                for path in _paths(entry) & claimed
                if path[-1] != "." and patching.value_at(old, path) != patching.value_at(config, path)
            }
        )
        if conflicts:
            shown = "\n".join(
                f'conflict with "{who}" using {old["apiVersion"]}: {_dotted(path)}' for who, path in conflicts
            )
            causes = [
                {
                    "reason": "FieldManagerConflict",
                    "message": f'conflict with "{who}"',
                    "field": _dotted(path),
                }
                for who, path in conflicts
            ]
            raise ApiError(
                409,
                f"Apply failed with {len(conflicts)} conflict{'s' if len(conflicts) > 1 else ''}: {shown}",
                causes=causes,
            )

    @staticmethod
    def _check_precondition(rtype: ResourceType, old: Obj, obj: Obj) -> None:
        wanted = obj["metadata"].get("resourceVersion")
        if wanted and wanted != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {rtype.qualified} "{old["metadata"]["name"]}": '
                "the object has been modified; please apply your changes to the latest version and "
                "try again",
                name=old["metadata"]["name"],
                group=rtype.group,
                kind=rtype.plural,
            )

    def _update(
        self,
        rtype: ResourceType,
        old: Obj,
        new: Obj,
        manager: str,
        operation: str,
        subresource: str | None,
        dry_run: bool,
        strictness: str,
        claimed: set[patching.Path] | None = None,
        force: bool = False,
    ) -> Written:
        new = _protect(rtype, old, new, subresource)
        semantics.apply_defaults(new, self._allocate_ip)
        if rtype.tracks_generation and subresource != "status" and _generation_changed(rtype, old, new):
            new["metadata"]["generation"] = old["metadata"].get("generation", 0) + 1
        warnings = self._check(rtype, new, old, strictness)
        self._record_fields(rtype, new, old, manager, operation, subresource, claimed, force)
        if _without_volatile(new) == _without_volatile(old) or dry_run:
            result = copy.deepcopy(new if dry_run else old)  # a no-op write neither bumps nor notifies
        else:
            result = self._commit(rtype, new, "MODIFIED", copy.deepcopy(old))
        return result, warnings

    def _record_fields(
        self,
        rtype: ResourceType,
        new: Obj,
        old: Obj,
        manager: str,
        operation: str,
        subresource: str | None,
        claimed: set[patching.Path] | None,
        force: bool = False,
    ) -> None:
        """Maintain metadata.managedFields like server-side apply (Update takes changed fields silently)."""
        changed = (
            claimed if claimed is not None else patching.changed_paths(old, _subresource_part(rtype, new, subresource))
        )
        taken = changed if operation == "Update" or force else set()
        owned = changed | (_entry_paths(old, manager, operation, subresource) if operation == "Update" else set())
        entries = []
        for entry in (copy.deepcopy(e) for e in _entries(old) if not _same(e, manager, operation, subresource)):
            kept = {p for p in _paths(entry) - taken if patching.value_at(new, p) is not None}
            if kept:
                entries.append({**entry, "fieldsV1": patching.paths_to_fields(kept)})
        owned = {p for p in owned if patching.value_at(new, p) is not None}
        if owned:
            entry = {
                "manager": manager,
                "operation": operation,
                "apiVersion": rtype.api_version,
                "time": now_iso(),
                "fieldsType": "FieldsV1",
                "fieldsV1": patching.paths_to_fields(owned),
            }
            entries.append({**entry, "subresource": subresource} if subresource else entry)
        new["metadata"]["managedFields"] = entries

    # --- delete ---------------------------------------------------------------------------------------

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: Obj | None = None,
        dry_run: bool = False,
    ) -> Obj:
        options = options or {}
        with self.lock:
            old = self._existing(rtype, namespace, name)
            preconditions = options.get("preconditions") or {}
            for key in ("uid", "resourceVersion"):
                if preconditions.get(key) and preconditions[key] != old["metadata"][key]:
                    raise ApiError(
                        409,
                        f"Precondition failed: {key} in precondition: {preconditions[key]}, "
                        f"{key} in object meta: {old['metadata'][key]}",
                        name=name,
                        kind=rtype.plural,
                    )
            response = copy.deepcopy(old)
            if not dry_run:
                orphan = options.get("propagationPolicy") == "Orphan" or options.get("orphanDependents")
                response = self._delete_now(rtype, old, orphan=bool(orphan))
            if rtype.plural not in RETURNS_DELETED_OBJECT:
                return success_status(rtype, old)
            response["metadata"].update(deletionTimestamp=now_iso(), deletionGracePeriodSeconds=0)
            if rtype.plural == "namespaces":
                response["status"] = {"phase": "Terminating"}
            return response

    def _delete_now(self, rtype: ResourceType, obj: Obj, orphan: bool = False) -> Obj:
        if rtype.plural == "namespaces":
            for (plural, namespace, _), child in list(self.objects.items()):
                if namespace == obj["metadata"]["name"]:
                    self._delete_now(self.resource(plural), child, orphan=True)
        if rtype.plural == "pods":
            meta = obj["metadata"]
            for key in [key for key in self.logs if key[:2] == (meta["namespace"], meta["name"])]:
                del self.logs[key]
        deleted = self._commit(rtype, copy.deepcopy(obj), "DELETED", copy.deepcopy(obj))
        self._collect_garbage(obj["metadata"]["uid"], orphan)
        return deleted

    def _collect_garbage(self, owner_uid: str, orphan: bool) -> None:
        """Background cascading deletion (synchronous here), or orphaning that drops the owner reference."""
        for (plural, _, _), child in list(self.objects.items()):
            references = child["metadata"].get("ownerReferences") or []
            if not any(ref.get("uid") == owner_uid for ref in references):
                continue
            if orphan:
                updated = copy.deepcopy(child)
                updated["metadata"]["ownerReferences"] = [r for r in references if r.get("uid") != owner_uid]
                self._commit(self.resource(plural), updated, "MODIFIED", copy.deepcopy(child))
            else:
                self._delete_now(self.resource(plural), child)

    # --- direct access for tests ----------------------------------------------------------------------

    def put(self, obj: Obj) -> Obj:
        """Store an object as given (status included), bypassing validation: someone else changed it."""
        rtype = self.resource(obj["kind"])
        obj = copy.deepcopy(obj)
        obj["apiVersion"] = rtype.api_version
        meta = obj.setdefault("metadata", {})
        with self.lock:
            old = self.objects.get(self._key(rtype, meta.get("namespace"), meta["name"]))
            if old is None:
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now_iso())
                if rtype.tracks_generation:
                    meta.setdefault("generation", 1)
                return self._commit(rtype, obj, "ADDED", None)
            for key in ("uid", "creationTimestamp", "generation", "managedFields"):
                meta.setdefault(key, old["metadata"].get(key))
            if rtype.tracks_generation and _generation_changed(rtype, old, obj):
                meta["generation"] = old["metadata"].get("generation", 0) + 1
            return self._commit(rtype, obj, "MODIFIED", copy.deepcopy(old))

    def bind(self, namespace: str, name: str, binding: Obj) -> Obj:
        """pods/binding: how the scheduler sets spec.nodeName, the one way to change it."""
        pods = self.resource("pods")
        with self.lock:
            pod = self._existing(pods, namespace, name)
            if pod["spec"].get("nodeName"):
                raise ApiError(
                    409,
                    f'pod {name} is already assigned to node "{pod["spec"]["nodeName"]}"',
                    name=name,
                    kind="pods",
                )
            bound = copy.deepcopy(pod)
            bound["spec"]["nodeName"] = (binding.get("target") or {}).get("name", "")
            conditions = [c for c in bound["status"].get("conditions") or [] if c["type"] != "PodScheduled"]
            bound["status"]["conditions"] = [
                *conditions,
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": now_iso(),
                },
            ]
            self._commit(pods, bound, "MODIFIED", copy.deepcopy(pod))
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    def remove(self, rtype: ResourceType, namespace: str | None, name: str) -> None:
        with self.lock:
            self._delete_now(rtype, self._existing(rtype, namespace, name))

    def pod_log(self, namespace: str, pod: Obj, container: str | None, previous: bool) -> str:
        names = [c["name"] for c in pod["spec"].get("containers", [])]
        if container is None:
            if len(names) > 1:
                raise ApiError(
                    400,
                    f"a container name must be specified for pod {pod['metadata']['name']}, "
                    f"choose one of: [{' '.join(names)}]",
                )
            container = names[0]
        elif container not in names:
            raise ApiError(400, f"container {container} is not valid for pod {pod['metadata']['name']}")
        text = self.logs.get((namespace, pod["metadata"]["name"], container, previous))
        if text is not None:
            return text
        statuses = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}
        waiting = statuses.get(container, {}).get("state", {}).get("waiting")
        if previous:
            raise ApiError(
                400,
                f'previous terminated container "{container}" in pod "{pod["metadata"]["name"]}" not found',
            )
        if waiting or container not in statuses:
            reason = (waiting or {}).get("reason", "ContainerCreating")
            raise ApiError(
                400,
                f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: {reason}',
            )
        return ""


# --- helpers ----------------------------------------------------------------------------------------


def _load(body: str, yaml_allowed: bool) -> Any:
    try:
        return yaml.safe_load(body) if yaml_allowed else yaml.safe_load(body or "null")
    except yaml.YAMLError as error:
        raise ApiError(400, f"error decoding patch: {error}") from error


def _as_whole_object(old: Obj, config: Obj) -> Obj:
    """The stored object replaced by an applied configuration: its identity and status kept, nothing else."""
    result = {key: copy.deepcopy(value) for key, value in old.items() if key in ("apiVersion", "kind", "status")}
    result.update({key: copy.deepcopy(value) for key, value in config.items() if key not in ("metadata", "status")})
    metadata = {key: value for key, value in old["metadata"].items() if key not in ("labels", "annotations")}
    for key in ("labels", "annotations"):
        if key in (config.get("metadata") or {}):
            metadata[key] = copy.deepcopy(config["metadata"][key])
    result["metadata"] = copy.deepcopy(metadata)
    return result


def _entries(obj: Obj | None) -> list[Obj]:
    return (obj or {}).get("metadata", {}).get("managedFields") or []


def _same(entry: Obj, manager: str, operation: str, subresource: str | None) -> bool:
    return (entry.get("manager"), entry.get("operation"), entry.get("subresource")) == (
        manager,
        operation,
        subresource,
    )


def _paths(entry: Obj) -> set[patching.Path]:
    return patching.fields_to_paths(entry.get("fieldsV1") or {})


def _entry_paths(obj: Obj, manager: str, operation: str, subresource: str | None) -> set[patching.Path]:
    return set().union(*(_paths(e) for e in _entries(obj) if _same(e, manager, operation, subresource)))


def _dotted(path: patching.Path) -> str:
    return "".join(f".{part[2:]}" if part.startswith("f:") else f"[{part[2:]}]" for part in path if part != ".")


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _subresource_part(rtype: ResourceType, obj: Obj, subresource: str | None) -> Obj:
    """The part of an object a write to the main resource or to /status may change."""
    if subresource == "status":
        return {"status": obj.get("status") or {}}
    return {k: v for k, v in obj.items() if k != "status"} if rtype.has_status else obj


def _protect(rtype: ResourceType, old: Obj, new: Obj, subresource: str | None) -> Obj:
    """PrepareForUpdate: server-set metadata stays; a main write keeps status, a /status write keeps spec."""
    if subresource == "status":
        result = copy.deepcopy(old)
        result["status"] = copy.deepcopy(new.get("status") or {})
        if rtype.group == "apps":  # the apps status strategies take annotations from the request
            result["metadata"]["annotations"] = copy.deepcopy(new["metadata"].get("annotations"))
            if result["metadata"]["annotations"] is None:
                del result["metadata"]["annotations"]
        return result
    result = copy.deepcopy(new)
    for key in SERVER_SET_METADATA:
        if key in old["metadata"]:
            result["metadata"][key] = copy.deepcopy(old["metadata"][key])
        else:
            result["metadata"].pop(key, None)
    if rtype.has_status:
        result["status"] = copy.deepcopy(old.get("status", {}))
    if rtype.kind == "Service":  # allocated IPs survive a PUT that omits them
        for key in ("clusterIP", "clusterIPs"):
            if key in old.get("spec", {}):
                result.setdefault("spec", {}).setdefault(key, old["spec"][key])
    return result


def _generation_changed(rtype: ResourceType, old: Obj, new: Obj) -> bool:
    changed = _spec_part(old) != _spec_part(new)
    if rtype.kind == "Deployment":  # annotations are copied to ReplicaSets, so they count as a change
        changed |= old["metadata"].get("annotations") != new["metadata"].get("annotations")
    return changed


def _without_volatile(obj: Obj) -> Obj:
    copied = copy.deepcopy(obj)
    copied["metadata"].pop("resourceVersion", None)
    for entry in copied["metadata"].get("managedFields") or []:
        entry.pop("time", None)
    return copied
