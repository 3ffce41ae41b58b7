"""Telling people: email to approvers and requesters, signed webhooks to other systems.

Nothing is sent inside a transaction: events are collected while the change is made and go out
once it has committed (email through Django's email backend, webhooks through a Celery task that
retries with backoff, enqueued again when its message is lost).
"""

import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import timedelta

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Membership, Role
from accounts.permissions import Action, Actor, require
from audit.services import record
from deployments import policy, supervision
from deployments.models import PromotionRequest, Webhook, WebhookDelivery
from deployments.outbound import OutboundRefused
from deployments.tasks import deliver_webhook

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Slipway-Signature"
# A delivery is tried this many times (the first and eight retries, 2 s to 10 minutes apart), then given up.
DELIVERY_ATTEMPTS = 9


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """`t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp lets receivers refuse replays."""
    timestamp = timestamp or int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, body: bytes, header: str, *, tolerance: int = 300) -> bool:
    """What a receiver does; used by the tests the way a receiver would."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def promotion_payload(event: str, promotion: PromotionRequest) -> dict:
    return {
        "event": event,
        "promotion": {
            "id": promotion.pk,
            "state": promotion.state,
            "environment": promotion.environment.name,
            "team": promotion.model.team.slug,
            "model": promotion.model.name,
            "version": promotion.version.number,
            "image": promotion.image,
            "requested_by": promotion.requested_by.get_username(),
            "reason": promotion.reason,
            "rollout": promotion.rollout_id,
            "note": promotion.note,
        },
    }


def approver_emails(promotion: PromotionRequest) -> list[str]:
    """Told of a new request: whoever the policy lets decide it."""
    return sorted({user.email for user in policy.approvers(promotion) if user.email})


def promotion_event(event: str, promotion: PromotionRequest) -> None:
    """Queue the email and webhooks for an event; they leave after the current transaction commits."""
    payload = promotion_payload(event, promotion)
    url = f"{settings.SLIPWAY_BASE_URL}/promotions/{promotion.pk}/"
    subject = (
        f"[Slipway] {promotion.model.name} v{promotion.version.number} to {promotion.environment.name}: "
        f"{event.split('.', 1)[1].replace('_', ' ')}"
    )
    recipients = (
        approver_emails(promotion)
        if event == "promotion.requested"
        else ([promotion.requested_by.email] if promotion.requested_by.email else [])
    )
    body = f"{promotion.reason}\n\nState: {promotion.state}. {promotion.note}\n\n{url}"
    webhooks = list(
        Webhook.objects.filter(team=promotion.model.team, active=True).filter(
            Q(events=[]) | Q(events__icontains=f'"{event}"')
        )
    )

    _send_after_commit(event, subject, body, recipients, webhooks, payload, what=f"promotion {promotion.pk}")


def release_vulnerable_event(rollout, findings) -> None:
    """A running release's image was found vulnerable after it was deployed (a refreshed database):
    the team's admins and approvers get an email, its webhooks the event `release.vulnerable`."""
    event = "release.vulnerable"
    model, environment = rollout.model, rollout.environment
    payload = {
        "event": event,
        "release": {
            "rollout": rollout.pk,
            "environment": environment.name,
            "team": model.team.slug,
            "model": model.name,
            "version": rollout.version.number,
            "image": rollout.image,
        },
        "findings": [
            {
                "advisory": f.advisory_id,
                "aliases": f.aliases,
                "package": f.package,
                "installed_version": f.installed_version,
                "fixed_version": f.fixed_version,
                "severity": f.severity,
            }
            for f in findings
        ],
    }
    url = f"{settings.SLIPWAY_BASE_URL}/builds/{rollout.build_id}/#vulnerabilities"
    subject = (
        f"[Slipway] {model.name} v{rollout.version.number} in {environment.name}: "
        f"{len(findings)} new {'vulnerability' if len(findings) == 1 else 'vulnerabilities'}"
    )
    body = (
        "\n".join(f.explain() for f in findings) + f"\n\nFound after it was deployed, by a refreshed database.\n{url}"
    )
    recipients = sorted(
        {
            m.user.email
            for m in Membership.objects.filter(team=model.team, role__in=[Role.APPROVER, Role.ADMIN]).select_related(
                "user"
            )
            if m.user.email
        }
    )
    webhooks = list(
        Webhook.objects.filter(team=model.team, active=True).filter(Q(events=[]) | Q(events__icontains=f'"{event}"'))
    )
    _send_after_commit(event, subject, body, recipients, webhooks, payload, what=f"rollout {rollout.pk}")


def _send_after_commit(event, subject, body, recipients, webhooks, payload, *, what) -> None:
    def send() -> None:
        if recipients:
            try:
                send_mail(subject, body, None, recipients, fail_silently=False)
            except OSError:
                logger.exception("could not send %s email for %s", event, what)
        for webhook in webhooks:
            delivery = WebhookDelivery.objects.create(webhook=webhook, event=event, payload=payload)
            supervision.enqueue(deliver_webhook, delivery.pk)

    transaction.on_commit(send)


def deliver(delivery_id: int) -> int | None:
    """POST one delivery. Returns in how many seconds to try again after a failure, or None when there
    is nothing more to do: delivered, refused by the outbound policy, given up, or taken by another
    message for the same delivery."""
    delivery = WebhookDelivery.objects.select_related("webhook").get(pk=delivery_id)
    if delivery.delivered_at or delivery.due_at is None:
        return None
    attempt = delivery.attempts + 1
    pending = WebhookDelivery.objects.filter(pk=delivery.pk)
    # Claimed with a conditional update: a requeued message racing a slow worker sends nothing twice.
    if not pending.filter(attempts=delivery.attempts, delivered_at=None).update(
        attempts=attempt, due_at=timezone.now()
    ):
        return None
    body = json.dumps(delivery.payload, sort_keys=True).encode()
    try:
        settings.OUTBOUND_POLICY.check_url(delivery.webhook.url, "webhook URL")
    except OutboundRefused as refused:
        # Not retried: the address is refused until an administrator allows its network.
        pending.update(last_error=str(refused)[:500], due_at=None)
        return None
    try:
        response = requests.post(
            delivery.webhook.url,
            data=body,
            timeout=10,
            allow_redirects=False,  # a redirect could lead anywhere, past the check above
            headers={
                "Content-Type": "application/json",
                "X-Slipway-Event": delivery.event,
                "X-Slipway-Delivery": str(delivery.pk),
                SIGNATURE_HEADER: sign(delivery.webhook.secret, body),
            },
        )
    except requests.RequestException as exc:
        return _delivery_failed(delivery, attempt, _failure_summary(exc))
    pending.update(last_status=response.status_code)
    if 300 <= response.status_code < 400:
        return _delivery_failed(
            delivery, attempt, f"The receiver answered {response.status_code} (a redirect, which is not followed)."
        )
    if response.status_code >= 300:
        return _delivery_failed(delivery, attempt, f"The receiver answered {response.status_code}.")
    pending.update(delivered_at=timezone.now(), last_error="", due_at=None)
    return None


def _delivery_failed(delivery: WebhookDelivery, attempt: int, error: str) -> int | None:
    pending = WebhookDelivery.objects.filter(pk=delivery.pk)
    if attempt >= DELIVERY_ATTEMPTS:
        pending.update(last_error=f"{error} Given up after {attempt} attempts."[:500], due_at=None)
        logger.warning("webhook delivery %s (%s) given up after %s attempts", delivery.pk, delivery.event, attempt)
        return None
    retry_in = min(2**attempt, 600)
    pending.update(last_error=error[:500], due_at=timezone.now() + timedelta(seconds=retry_in))
    return retry_in


def requeue_deliveries() -> int:
    """Enqueue again the deliveries due for long, as builds and rollouts are: their message was lost
    with the broker, or with the worker that held it (a retry waiting for its time, an attempt)."""
    return supervision.requeue(WebhookDelivery.objects.filter(delivered_at=None), deliver_webhook, since="due_at")


def _failure_summary(exc: requests.RequestException) -> str:
    """Our own words for a failed delivery: the library's text can carry what an internal host said."""
    if isinstance(exc, requests.Timeout):
        return "The receiver did not answer in time."
    if isinstance(exc, requests.exceptions.SSLError):
        return "The receiver's TLS certificate could not be verified."
    if isinstance(exc, requests.ConnectionError):
        return "The receiver could not be reached."
    return "The delivery failed."


def webhook_create(*, actor: Actor, team, url: str, events: list[str], active: bool = True) -> tuple[Webhook, str]:
    """Create a webhook with a new signing secret, returned once (it is stored encrypted)."""
    require(actor, Action.MANAGE_TEAM, team)
    try:
        settings.OUTBOUND_POLICY.check_url(url, "webhook URL", unresolved_ok=True)
    except OutboundRefused as refused:
        raise ValidationError({"url": str(refused)}) from None
    secret = "whsec_" + secrets.token_urlsafe(32)
    with transaction.atomic():
        webhook = Webhook.objects.create(team=team, url=url, events=events, active=active, secret=secret)
        record(actor=actor, action="webhook.create", obj=webhook, after={"url": webhook.shown_url, "events": events})
    return webhook, secret


def webhook_delete(*, actor: Actor, webhook: Webhook) -> None:
    require(actor, Action.MANAGE_TEAM, webhook.team)
    with transaction.atomic():
        record(
            actor=actor,
            action="webhook.delete",
            obj=webhook,
            before={"url": webhook.shown_url, "events": webhook.events, "active": webhook.active},
        )
        webhook.delete()
