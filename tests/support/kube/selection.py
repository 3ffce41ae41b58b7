"""Label and field selectors with the syntax and error behaviour of the Kubernetes API server."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_SET_RE = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$")
_OP_RE = re.compile(r"^([\w./-]+)\s*(==|!=|=)\s*([\w./-]*)$")
_EXISTS_RE = re.compile(r"^(!?)([\w./-]+)$")

# The fields a real API server accepts in fieldSelector, per kind; others answer 400.
_COMMON_FIELDS = {"metadata.name", "metadata.namespace"}
SUPPORTED_FIELDS: dict[str, set[str]] = {
    "Pod": {
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    },
    "Event": {
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    },
    "Secret": {"type"},
    "Namespace": {"status.phase"},
    "ReplicaSet": {"status.replicas"},
    "Node": {"spec.unschedulable"},
}


class SelectorError(ValueError):
    """A selector the API server would refuse with 400 BadRequest."""


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not inside a parenthesised value set."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    terms.append(current.strip())
    return [term for term in terms if term]


def _label_term(term: str) -> Predicate:
    if match := _SET_RE.match(term):
        key, operator, raw_values = match.groups()
        values = {value.strip() for value in raw_values.split(",") if value.strip()}
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _OP_RE.match(term):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS_RE.match(term):
        negate, key = match.groups()
        return (lambda labels: key not in labels) if negate else (lambda labels: key in labels)
    raise SelectorError(f"unable to parse requirement: {term!r}")


def parse_label_selector(selector: str | None) -> Predicate:
    """Returns a predicate over a full object (it reads metadata.labels)."""
    terms = [_label_term(term) for term in _split_terms(selector or "")]

    def matches(obj: dict[str, Any]) -> bool:
        labels = obj.get("metadata", {}).get("labels") or {}
        return all(term(labels) for term in terms)

    return matches


def field_value(obj: dict[str, Any], path: str) -> str:
    """The string form a field selector compares against (absent fields read as "")."""
    value: Any = obj
    if path == "source":  # Events expose source.component under the name "source".
        path = "source.component"
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def parse_field_selector(selector: str | None, kind: str) -> Predicate:
    allowed = _COMMON_FIELDS | SUPPORTED_FIELDS.get(kind, set())
    checks: list[tuple[str, bool, str]] = []
    for term in _split_terms(selector or ""):
        match = re.match(r"^([\w.]+)\s*(==|!=|=)\s*(.*)$", term)
        if not match:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        path, operator, value = match.groups()
        if path not in allowed:
            raise SelectorError(f"field label not supported: {path}")
        checks.append((path, operator != "!=", value))

    def matches(obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) == equal for path, equal, value in checks)

    return matches


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """Evaluate a structured LabelSelector (matchLabels + matchExpressions), as workload selectors use."""
    selector, labels = selector or {}, labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        outcome = {
            "In": present and labels[key] in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }.get(operator, False)
        if not outcome:
            return False
    return True
