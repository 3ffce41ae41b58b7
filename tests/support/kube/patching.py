"""The four PATCH flavours of the API server and server-side-apply field ownership (managedFields).

Strategic merge and apply know list merge keys by field name (containers by name, ports by
containerPort/port, ...), which is how the built-in types declare them; other lists are atomic.
"""

from __future__ import annotations

import copy
import json
from typing import Any

MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "conditions": ("type",),
    "containerStatuses": ("name",),
    "initContainerStatuses": ("name",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "resourceClaims": ("name",),
    "podIPs": ("ip",),
    "ports": ("containerPort", "port"),  # container ports / service ports
}
PRIMITIVE_MERGE_LISTS = {"finalizers"}
UNTRACKED_METADATA = {
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
}


class PatchError(ValueError):
    """A patch the API server would refuse (it answers 422 or 400)."""


def json_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, everything else (lists too) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        try:
            doc = doc[int(part)] if isinstance(doc, list) else doc[part]
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise PatchError(f"path /{'/'.join(parts)} not found") from error
    return doc


def _remove(doc: Any, parts: list[str]) -> Any:
    parent = _resolve(doc, parts[:-1])
    try:
        return parent.pop(int(parts[-1]) if isinstance(parent, list) else parts[-1])
    except (KeyError, IndexError, ValueError) as error:
        raise PatchError(f"unable to remove nonexistent key: {parts[-1]}") from error


def _add(doc: Any, parts: list[str], value: Any) -> None:
    parent = _resolve(doc, parts[:-1])
    key = parts[-1]
    if isinstance(parent, list):
        parent.insert(len(parent) if key == "-" else int(key), value)
    elif isinstance(parent, dict):
        parent[key] = value
    else:
        raise PatchError(f"cannot add to /{'/'.join(parts)}")


def json_patch(target: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(target)
    for operation in operations:
        op, parts = operation.get("op"), _pointer(operation.get("path", ""))
        if op == "add":
            _add(doc, parts, copy.deepcopy(operation["value"]))
        elif op == "remove":
            _remove(doc, parts)
        elif op == "replace":
            _remove(doc, parts)
            _add(doc, parts, copy.deepcopy(operation["value"]))
        elif op in ("move", "copy"):
            source = _pointer(operation["from"])
            value = _remove(doc, source) if op == "move" else copy.deepcopy(_resolve(doc, source))
            _add(doc, parts, value)
        elif op == "test":
            if _resolve(doc, parts) != operation.get("value"):
                raise PatchError(f"testing value /{'/'.join(parts)} failed")
        else:
            raise PatchError(f"Unexpected kind: {op}")
    return doc


def _merge_key(field: str, items: list[Any]) -> str | None:
    for key in MERGE_KEYS.get(field, ()):
        if items and all(isinstance(item, dict) and key in item for item in items):
            return key
    return None


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip_directives(item) for item in value if not (isinstance(item, dict) and "$patch" in item)]
    return copy.deepcopy(value)


def _merge_list(field: str, live: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return _strip_directives(patch)
    if field in PRIMITIVE_MERGE_LISTS:
        return live + [item for item in patch if item not in live]
    key = _merge_key(field, [item for item in patch if "$patch" not in item] + live)
    if key is None:
        return _strip_directives(patch)
    merged = copy.deepcopy(live)
    for item in patch:
        index = next((i for i, old in enumerate(merged) if old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                merged.pop(index)
        elif index is None:
            merged.append(_strip_directives(item))
        else:
            merged[index] = strategic_merge(merged[index], item)
    return merged


def strategic_merge(live: Any, patch: Any) -> Any:
    """Strategic merge patch: like JSON merge, but keyed lists merge item by item."""
    if not isinstance(patch, dict) or not isinstance(live, dict):
        return _strip_directives(patch)
    if patch.get("$patch") == "replace":
        return _strip_directives(patch)
    result = copy.deepcopy(live)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [item for item in result.get(field, []) if item not in value]
        elif key.startswith("$"):
            continue  # $setElementOrder, $retainKeys: ordering hints this emulator does not need.
        elif value is None or (isinstance(value, dict) and value.get("$patch") == "delete"):
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(key, result[key], value)
        else:
            result[key] = strategic_merge(result.get(key), value)
    return result


# --- field ownership (server-side apply) -------------------------------------------------------------

Path = tuple[str, ...]


def _item_key(item: dict[str, Any], key: str) -> str:
    return "k:" + json.dumps({key: item[key]}, separators=(",", ":"))


def field_paths(obj: Any, prefix: Path = (), field: str = "") -> set[Path]:
    """Leaf paths in fieldsV1 notation: ("f:spec", "f:template", 'k:{"name":"app"}', "f:image")."""
    paths: set[Path] = set()
    if isinstance(obj, dict) and obj:
        if prefix:
            paths.add((*prefix, "."))
        for key, value in obj.items():
            if prefix == ("f:metadata",) and key in UNTRACKED_METADATA:
                continue
            if not prefix and key in ("apiVersion", "kind"):
                continue
            paths |= field_paths(value, (*prefix, f"f:{key}"), key)
        return paths
    if isinstance(obj, list) and (key := _merge_key(field, obj)):
        for item in obj:
            item_path = (*prefix, _item_key(item, key))
            paths |= {(*item_path, ".")} | field_paths(item, item_path, field)
        return paths
    return {prefix} if prefix else set()


def _step(value: Any, part: str) -> Any:
    if part == ".":
        return value
    if part.startswith("f:"):
        return value.get(part[2:]) if isinstance(value, dict) else None
    wanted = json.loads(part[2:])
    if isinstance(value, list):
        return next(
            (item for item in value if isinstance(item, dict) and all(item.get(k) == v for k, v in wanted.items())),
            None,
        )
    return None


def value_at(obj: Any, path: Path) -> Any:
    for part in path:
        if part == ".":
            return {} if isinstance(obj, dict) else obj
        obj = _step(obj, part)
    return obj


def remove_path(obj: dict[str, Any], path: Path) -> None:
    """Remove the field (or keyed list item) a path names; a map's "." removes the map once empty."""
    if path[-1] == ".":
        path, only_if_empty = path[:-1], not path[-2].startswith("k:")
    else:
        only_if_empty = False
    parent = value_at(obj, path[:-1])
    last = path[-1]
    if last.startswith("f:") and isinstance(parent, dict) and last[2:] in parent:
        if not only_if_empty or parent[last[2:]] in ({}, [], None):
            del parent[last[2:]]
    elif last.startswith("k:") and isinstance(parent, list) and (item := _step(parent, last)) is not None:
        parent.remove(item)


def paths_to_fields(paths: set[Path]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path in paths:
        node = tree
        for part in path:
            node = node.setdefault(part, {})
    return tree


def fields_to_paths(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    paths: set[Path] = set()
    for part, child in tree.items():
        paths |= fields_to_paths(child, (*prefix, part)) if child else {(*prefix, part)}
    return paths


def changed_paths(old: dict[str, Any], new: dict[str, Any]) -> set[Path]:
    return {path for path in field_paths(new) if value_at(old, path) != value_at(new, path)}
