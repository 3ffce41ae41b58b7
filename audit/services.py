"""Writing the audit trail. Every app calls `record()`; audit imports none of them.

Transactions, the one rule to know:
`record()` writes in the caller's current transaction. Record a change inside the same
`transaction.atomic()` block as the change itself, so that the change and its audit row commit
together or not at all: an audit row never claims a change that rolled back, and no change commits
without its row (if the audit write fails, the change fails). Record a refusal where no enclosing
transaction will roll it back: before the `atomic()` block opens (permission checks run there) or
after it has been left, as `deployments.services.promotions` does for refusals found under a row lock.
A refusal recorded inside a block that then raises is rolled back with it and lost.
"""

import datetime
import ipaddress
import json
import re
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist, PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models

from audit.models import AuditEvent, AuditReview, Outcome
from audit.redaction import redact_urls_in

PLATFORM = "platform"  # actor_username when no person acted (expiry, scheduled checks, workers)
ANONYMOUS = "anonymous"
# Lowercase words joined by dots: "<object>.<verb>", e.g. "promotion.approve".
ACTION_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")


def record(
    *,
    actor,
    action: str,
    obj: models.Model | None = None,
    outcome: str = Outcome.SUCCEEDED,
    before: Any = None,
    after: Any = None,
    reason: str = "",
    team_id: int | None = None,
    environment: str = "",
    flagged: bool = False,
    request_id: str = "",
) -> AuditEvent:
    """Append one event to the audit trail and return it (see the module docstring on transactions).

    `actor` is who acted: an object with `.user`, `.token`, `.ip_address` and `.user_agent` (such as
    `accounts.permissions.Actor`), a plain user, or None for the platform itself. `obj` is the object
    acted on; its team is found from a `team_id` attribute or the model's `TEAM_LOOKUP` unless
    `team_id` is given, and its environment from an `environment` attribute unless `environment` is.
    `before`/`after` are stored as JSON; dates, decimals and UUIDs become strings. Credentials in URLs
    (in them, the object's name and the reason) are redacted: the trail is read by the whole team.
    """
    if not ACTION_PATTERN.match(action) or len(action) > 64:
        raise ValueError(f"audit action {action!r} is not lowercase dotted words (e.g. 'promotion.approve')")
    if outcome not in Outcome.values:
        raise ValueError(f"audit outcome {outcome!r} is not one of {', '.join(Outcome.values)}")
    user, token, ip_address, user_agent = _who(actor)
    event = AuditEvent(
        actor=user if user is not None and user.is_authenticated else None,
        actor_username=_username(user),
        token_name=(getattr(token, "name", "") or "")[:100],
        action=action,
        outcome=outcome,
        reason=redact_urls_in(reason or ""),
        flagged=flagged,
        before=redact_urls_in(json_safe(before if before is not None else {})),
        after=redact_urls_in(json_safe(after if after is not None else {})),
        ip_address=_valid_ip(ip_address),
        user_agent=(user_agent or "")[:500],
        request_id=(request_id or getattr(actor, "request_id", "") or "")[:64],
        environment=(environment or (_environment_of(obj) if obj is not None else ""))[:63],
        team_id=team_id if team_id is not None else (_team_id_of(obj) if obj is not None else None),
    )
    if obj is not None:
        event.object_type = obj._meta.label_lower
        event.object_id = "" if obj.pk is None else str(obj.pk)[:64]
        event.object_repr = redact_urls_in(_repr(obj))[:200]
    event.save()
    return event


def client_ip(request) -> str | None:
    """The address the request came from. `X-Forwarded-For` is believed only when the connection comes
    from a proxy named in SLIPWAY_TRUSTED_PROXIES, and then only up to the first address no trusted
    proxy vouches for (reading from the right: a client can put anything at the left)."""
    remote = _valid_ip(request.META.get("REMOTE_ADDR"))
    if remote is None or not _trusted(remote):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        address = _valid_ip(hop)
        if address is None:
            return remote  # a proxy we trust sent garbage: keep what we know
        if not _trusted(address):
            return address
    return _valid_ip(hops[0]) if hops else remote


def _trusted(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in network for network in settings.TRUSTED_PROXIES)


def model_snapshot(instance: models.Model, fields) -> dict:
    """The named fields of an instance as a JSON-safe dict, for `before`/`after`.

    A foreign key is stored as the related id (no query); a many-to-many as the sorted ids.
    Never list secrets here: the trail is readable by the whole team.
    """
    snapshot = {}
    for name in fields:
        try:
            field = instance._meta.get_field(name)
        except FieldDoesNotExist:  # a property or a plain attribute
            snapshot[name] = getattr(instance, name)
            continue
        if field.many_to_many:
            snapshot[name] = sorted(getattr(instance, name).values_list("pk", flat=True)) if instance.pk else []
        else:
            snapshot[name] = getattr(instance, cast(models.Field, field).attname)
    return json_safe(snapshot)


def review_add(*, event: AuditEvent, reviewer, note: str = "") -> AuditReview:
    """Record that a reviewer looked at an event (a new row: the event itself never changes).

    Reviewers are site administrators and people given the "Can add audit review" permission.
    """
    if not (reviewer.is_authenticated and reviewer.is_active and reviewer.has_perm("audit.add_auditreview")):
        raise PermissionDenied("Reviewing audit events needs the 'Can add audit review' permission.")
    return AuditReview.objects.create(
        event=event, reviewer=reviewer, reviewer_username=reviewer.get_username(), note=note.strip()
    )


class _Encoder(DjangoJSONEncoder):
    def default(self, o):
        if isinstance(o, datetime.datetime | datetime.time):
            # Full precision: DjangoJSONEncoder would cut to milliseconds, and the trail must be exact.
            text = o.isoformat()
            return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
        if isinstance(o, models.Model):
            return o.pk
        if isinstance(o, set | frozenset):
            return sorted(o, key=str)
        try:
            return super().default(o)
        except TypeError:
            # Never lose an audit row over an odd value (a file, a path): keep its text.
            return str(o)


def json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=_Encoder))


def _who(actor):
    """(user or None, token, ip address, user agent) of a duck-typed actor, a user, or None."""
    if actor is None:
        return None, None, None, ""
    if isinstance(actor, AbstractBaseUser | AnonymousUser):
        user, token, ip_address, user_agent = actor, None, None, ""
    else:
        user = getattr(actor, "user", None)
        token = getattr(actor, "token", None)
        ip_address = getattr(actor, "ip_address", None)
        user_agent = getattr(actor, "user_agent", "")
    return user, token, ip_address, user_agent


def _username(user) -> str:
    if user is None:
        return PLATFORM
    if not user.is_authenticated:
        return ANONYMOUS
    return user.get_username()


def _valid_ip(value) -> str | None:
    # The address may come from a header; an invalid one must not break the write (inet column).
    try:
        return str(ipaddress.ip_address(str(value).strip())) if value else None
    except ValueError:
        return None


def _repr(obj) -> str:
    try:
        text = str(obj)
    except Exception:  # a __str__ that needs a missing relation must not lose the event
        text = f"{obj._meta.verbose_name} #{obj.pk}"
    return text[:200]


def _team_id_of(obj) -> int | None:
    if obj._meta.label_lower == "accounts.team":
        return obj.pk
    try:
        if hasattr(obj, "team_id"):
            return obj.team_id
        lookup = getattr(obj, "TEAM_LOOKUP", "")
        if not lookup:
            return None
        *path, last = lookup.split("__")
        target = obj
        for name in path:  # e.g. "version__model__team": obj.version.model.team_id
            target = getattr(target, name, None)
            if target is None:
                return None
        return getattr(target, f"{last}_id", None)
    except ObjectDoesNotExist:
        return None


def _environment_of(obj) -> str:
    try:
        environment = getattr(obj, "environment", None)
    except ObjectDoesNotExist:
        return ""
    if environment is None or isinstance(environment, str):
        return environment or ""
    return str(getattr(environment, "name", ""))
