"""What changes: a promotion against what runs now (its page and the API show the same facts), and two
versions of a model side by side (the compare page).

A request keeps what it changed as it stood when it was made, and each approval keeps what its
approver was shown: once decided, pages and the API show that ("as approved"), not a comparison
against a state the approval itself brought about.
"""

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from deployments.deployment_settings import LABELS as SETTING_LABELS
from deployments.models import PromotionRequest, PromotionState, Rollout, RolloutState
from deployments.selectors.environments import effective_settings
from deployments.selectors.rollouts import current_release
from deployments.selectors.vulnerabilities import acceptance_of, active_acceptances, promotion_delta


def _diff(before: dict, after: dict) -> list[dict]:
    rows = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            rows.append(
                {
                    "key": key,
                    "before": old,
                    "after": new,
                    "change": "added" if key not in before else "removed" if key not in after else "changed",
                }
            )
    return rows


def _packages(build) -> dict:
    """The Python packages of a build (its bill of materials also lists Debian packages and the runtime)."""
    return {
        item["name"].lower(): item["version"]
        for item in (build.bill_of_materials if build else [])
        if item.get("ecosystem", "PyPI") == "PyPI"
    }


def _finding(finding, acceptances) -> dict:
    accepted = acceptance_of(finding, acceptances)
    return {
        "advisory": finding.advisory_id,
        "aliases": finding.aliases,
        "package": finding.package,
        "installed_version": finding.installed_version,
        "fixed_version": finding.fixed_version,
        "severity": finding.severity,
        "summary": finding.summary,
        "explanation": finding.explain(),
        "accepted": None
        if accepted is None
        else {
            "by": accepted.accepted_by.get_username(),
            "reason": accepted.reason,
            "expires_at": accepted.expires_at,
            "until": f"{accepted.expires_at:%Y-%m-%d %H:%M}",
        },
    }


def vulnerability_changes(promotion: PromotionRequest) -> dict:
    """The vulnerabilities the request's image adds and removes against what runs in the environment."""
    delta = promotion_delta(promotion)
    acceptances = list(active_acceptances(promotion.environment, promotion.model))
    return {
        "scanned": promotion.build.scanned_at is not None,
        "against": delta.running.image if delta.running else None,
        "added": [_finding(f, acceptances) for f in delta.added],
        "removed": [_finding(f, acceptances) for f in delta.removed],
        "unchanged": delta.kept,
        "acceptances": [
            {
                "advisory": a.advisory_id,
                "by": a.accepted_by.get_username(),
                "reason": a.reason,
                "expires_at": a.expires_at,
                "until": f"{a.expires_at:%Y-%m-%d %H:%M}",
            }
            for a in acceptances
        ],
    }


def compare(promotion: PromotionRequest) -> dict:
    current = current_release(promotion.environment, promotion.model)
    current_build = current.build if current else None
    wanted_settings = promotion.deployment_settings or effective_settings(promotion.environment, promotion.model)
    runs = (
        Rollout.objects.filter(image=promotion.image)
        .select_related("environment")
        .order_by("environment__position", "-created_at")
    )
    history: dict[str, dict[str, Any]] = {}
    for rollout in runs:
        entry = history.setdefault(
            rollout.environment.name,
            {
                "environment": rollout.environment.name,
                "succeeded": 0,
                "failed": 0,
                "running_now": False,
                "last_rollout": None,
            },
        )
        if rollout.state in RolloutState.released():
            entry["succeeded"] += 1
            entry["last_rollout"] = entry["last_rollout"] or rollout.pk
        elif rollout.state == RolloutState.FAILED:
            entry["failed"] += 1
        entry["running_now"] = entry["running_now"] or rollout.state == RolloutState.SUCCEEDED
    return {
        "current": None
        if current is None
        else {
            "rollout": current.pk,
            "version": current.version.number,
            "image": current.image,
            "framework": current.version.framework,
            "since": current.finished_at,
        },
        "proposed": {
            "version": promotion.version.number,
            "image": promotion.image,
            "build": promotion.build_id,
            "framework": promotion.version.framework,
        },
        "same_image": current is not None and current.image == promotion.image,
        "dependencies": _diff(_packages(current_build), _packages(promotion.build)),
        "metrics": _diff(current.version.metrics if current else {}, promotion.version.metrics),
        "settings": _diff(current.deployment_settings if current else {}, wanted_settings),
        "digest_history": list(history.values()),
        "vulnerabilities": vulnerability_changes(promotion),
    }


def decision_context(promotion: PromotionRequest) -> dict:
    """compare() as stored JSON: what a request keeps when it is made and each approval when it is given."""
    return json.loads(json.dumps(compare(promotion), cls=DjangoJSONEncoder))


def shown_context(promotion: PromotionRequest) -> dict:
    """What the page and the API show as the request's changes. Pending: against what runs now (what an
    approver decides on). Decided: what the deciding approval was given ("approved" / "rejected"), or the
    context kept with the request ("requested"). `as_of` says which; `recorded_at` when it was kept."""
    if promotion.state != PromotionState.PENDING:
        given = [a for a in promotion.approvals.all() if a.digest == promotion.digest and a.context]
        if given:
            last = given[-1]
            return {
                **last.context,
                "as_of": "approved" if last.decision == "approve" else "rejected",
                "recorded_at": last.created_at,
                "recorded_by": last.approver.get_username(),
            }
        if promotion.decision_context:
            return {**promotion.decision_context, "as_of": "requested", "recorded_at": promotion.created_at}
    return {**decision_context(promotion), "as_of": "now", "recorded_at": None}


def change_rows(changes: dict) -> dict[str, list[dict]]:
    """The differences of a context as rows under the Now / Proposed columns, each with a label
    people read (settings keys become "CPU request", ...), and `now` / `proposed` never left empty."""

    def rows(diffs, label=lambda key: key, show=lambda value: value):
        return [
            {
                "label": label(d["key"]),
                "key": d["key"],
                "change": d["change"],
                "now": "not set" if d["before"] is None else show(d["before"]),
                "proposed": "removed" if d["after"] is None else show(d["after"]),
            }
            for d in diffs
        ]

    def setting(value):
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in value.items()) or "none"
        if isinstance(value, list):
            return ", ".join(str(v) for v in value) or "none"
        return "none" if value == "" else value

    return {
        "dependencies": rows(changes.get("dependencies", [])),
        "metrics": rows(changes.get("metrics", [])),
        "settings": rows(changes.get("settings", []), label=lambda key: SETTING_LABELS.get(key, key), show=setting),
    }


def compare_versions(older, newer) -> dict:
    """Two versions of a model side by side: metrics, parameters, packages, deployment settings."""

    def latest_build(version):
        return version.builds.filter(state="succeeded").order_by("-finished_at").first()

    def last_settings(version):
        rollout = Rollout.objects.filter(version=version).order_by("-created_at").first()
        return rollout.deployment_settings if rollout else {}

    def requirements(version):
        return {
            line.split("=", 1)[0].split(">", 1)[0].split("<", 1)[0].strip().lower(): line
            for line in version.requirements
        }

    return {
        "metrics": _diff(older.metrics, newer.metrics),
        "parameters": _diff(older.parameters, newer.parameters),
        "requirements": _diff(requirements(older), requirements(newer)),
        "packages": _diff(_packages(latest_build(older)), _packages(latest_build(newer))),
        "settings": _diff(last_settings(older), last_settings(newer)),
        "framework": (older.framework, newer.framework),
        "signature_changed": older.signature != newer.signature,
    }
