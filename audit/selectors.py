"""Reading the audit trail, restricted to what the user may see, with the filters pages and API share.

A site administrator, or anyone given the "Can view audit event" permission (a compliance officer),
sees every event; anyone else sees the events of the teams they belong to and the events they caused
themselves (their tokens, their refused attempts elsewhere). Client details (IP address, user agent)
are personal data: only those who see everything, and the actor themselves, see them.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from audit.models import AuditEvent, AuditReview, Outcome

FILTERS = (
    "actor",
    "action",
    "outcome",
    "object_type",
    "object_id",
    "team",
    "environment",
    "flagged",
    "since",
    "until",
    "q",
)
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Bound:
    at: datetime
    inclusive: bool


def visible_events(*, user) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("actor", "team").annotate(
        reviewed=Exists(AuditReview.objects.filter(event=OuterRef("pk")))
    )
    if not user.is_authenticated:
        return events.none()
    # A request made with an API token limited to some teams sees only those teams' events (and the
    # user's own that concern no team); limited to some environments, none of the others' events.
    # accounts.authentication puts the token on the user (accounts.permissions reads it the same way).
    token = getattr(user, "request_token", None)
    if token is not None and token.environment_names:
        events = events.filter(Q(environment="") | Q(environment__in=token.environment_names))
    limited = token.team_ids if token is not None else None
    if limited:
        return events.filter(Q(team_id__in=limited) | Q(actor=user, team__isnull=True))
    if sees_everything(user):
        return events
    memberships = apps.get_model("accounts", "Membership").objects.filter(user=user)
    return events.filter(Q(team_id__in=memberships.values("team_id")) | Q(actor=user))


def sees_everything(user) -> bool:
    return user.is_authenticated and user.is_active and (user.is_superuser or user.has_perm("audit.view_auditevent"))


def sees_client(user, event: AuditEvent) -> bool:
    """Whether the user may see the IP address and user agent of the event."""
    return sees_everything(user) or (event.actor_id is not None and event.actor_id == user.pk)


def may_review(user) -> bool:
    return user.is_authenticated and user.is_active and user.has_perm("audit.add_auditreview")


def event_list(*, user, filters: Mapping[str, str] | None = None) -> QuerySet[AuditEvent]:
    """Visible events matching the filters, newest first. Raises ValidationError naming a bad filter."""
    events = visible_events(user=user)
    for key, value in clean_filters(filters or {}).items():
        events = events.filter(_condition(key, value))
    return events.order_by("-created_at", "-id")


def filter_teams(*, user) -> QuerySet:
    """The teams offered in the filter bar."""
    teams = apps.get_model("accounts", "Team").objects.order_by("slug")
    if sees_everything(user):
        return teams
    return teams.filter(memberships__user=user)


def event_get(*, user, pk: int) -> AuditEvent:
    return get_object_or_404(visible_events(user=user), pk=pk)


def clean_filters(params: Mapping[str, str]) -> dict:
    """The known, non-empty filters with typed values; unknown keys (page, format) are ignored."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key in FILTERS:
        value = (params.get(key) or "").strip()
        if not value:
            continue
        if "\x00" in value:  # PostgreSQL text never holds NUL: refuse it here rather than fail the query
            errors[key] = "Null characters are not allowed."
        elif key == "outcome" and value not in Outcome.values:
            errors[key] = f"Choose one of: {', '.join(Outcome.values)}."
        elif key == "flagged":
            if value.lower() not in TRUE + FALSE:
                errors[key] = "Use true or false."
            else:
                cleaned[key] = value.lower() in TRUE
            continue
        elif key in ("since", "until"):
            bound = _parse_moment(value, end_of_day=key == "until")
            if bound is None:
                errors[key] = f"“{value}” is not a date or an ISO 8601 date and time."
            else:
                cleaned[key] = bound
            continue
        cleaned[key] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


def _condition(key: str, value) -> Q:
    if key == "actor":
        return Q(actor_username=value)
    if key == "action":
        # "promotion." or "promotion.*" selects every promotion action; anything else is exact.
        prefix = value.removesuffix("*")
        return Q(action__startswith=prefix) if prefix.endswith(".") else Q(action=value)
    if key == "team":
        return Q(team__slug=value)
    if key == "since":
        return Q(created_at__gte=value.at)
    if key == "until":
        return Q(created_at__lte=value.at) if value.inclusive else Q(created_at__lt=value.at)
    if key == "q":
        return Q(object_repr__icontains=value) | Q(reason__icontains=value)
    return Q(**{key: value})


def _parse_moment(value: str, *, end_of_day: bool) -> Bound | None:
    """An ISO date and time (naive ones are in the site's time zone), or a date: a whole day."""
    # A "+01:00" offset typed into a URL unencoded arrives as " 01:00".
    value = value.replace(" ", "+") if "T" in value else value.replace(" ", "T", 1)
    try:
        # Python reads "2025-03-01" as a datetime too: a date alone is tried first.
        day = parse_date(value)
        moment = None if day else parse_datetime(value)
    except ValueError:
        return None
    if moment:
        return Bound(moment if timezone.is_aware(moment) else timezone.make_aware(moment), inclusive=True)
    if day is None:
        return None
    if end_of_day:  # "until 2025-03-31" includes that day
        return Bound(timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min)), inclusive=False)
    return Bound(timezone.make_aware(datetime.combine(day, time.min)), inclusive=True)
