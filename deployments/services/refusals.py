"""A refusal on the audit trail, once: what the deploy, rollback and promotion services share."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import PermissionDenied, ValidationError

from accounts.permissions import Actor, Refused
from audit.services import record
from deployments import policy


@contextmanager
def refusals_recorded(*, actor: Actor, action: str, obj, **facts) -> Iterator[None]:
    """Record a permission or validation refusal raised inside, then let it go on. The policy's own
    `Refused` is recorded where it is raised; the mark tells the API and pages not to record it again."""
    try:
        yield
    except Refused:
        raise
    except (PermissionDenied, ValidationError) as exc:
        event = record(actor=actor, action=action, obj=obj, outcome="refused", reason=policy.reason_of(exc), **facts)
        setattr(exc, "recorded", True)  # noqa: B010  the API and pages record it no second time
        setattr(exc, "audit_event", event)  # noqa: B010  and log it from the event
        raise
