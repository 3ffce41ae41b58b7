"""Container registry settings: global (site admins) or per team (team admins)."""

import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.permissions import Action, Actor, require
from audit.services import record
from deployments.models import ContainerRegistry
from deployments.outbound import OutboundRefused

URL_RE = re.compile(r"^(?:[a-zA-Z0-9.-]+|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?(?:/[a-z0-9._-]+)*$")
LOOPBACK_HOSTS = ("127.", "localhost", "[::1]")


def _require_admin(actor: Actor, registry: ContainerRegistry) -> None:
    """A team's registry is managed by the team's admins; the global one by site administrators."""
    require(actor, Action.MANAGE_TEAM, registry)


def _clean(registry: ContainerRegistry) -> None:
    url = registry.url.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    if not URL_RE.match(url):
        raise ValidationError({"url": "Give the registry as host[:port][/path], e.g. registry.example.com:5000/ml."})
    registry.url = url
    if registry.insecure and not url.startswith(LOOPBACK_HOSTS):
        raise ValidationError({"insecure": "Plain HTTP is only allowed for a registry on this machine (loopback)."})
    try:
        settings.OUTBOUND_POLICY.check_registry(registry.host, unresolved_ok=True)
    except OutboundRefused as refused:
        raise ValidationError({"url": str(refused)}) from None
    if registry.password and not registry.username:
        raise ValidationError({"username": "A password needs a username."})
    if not registry.name.strip():
        raise ValidationError({"name": "Give the registry a name."})


def registry_save(*, actor: Actor, registry: ContainerRegistry, password: str | None = None) -> ContainerRegistry:
    """Create or update. `password=None` keeps the stored one: it is never sent back to be re-entered."""
    _require_admin(actor, registry)
    if password is not None:
        registry.password = password
    _clean(registry)
    created = registry.pk is None
    try:
        with transaction.atomic():
            registry.save()
            record(
                actor=actor,
                action="registry.create" if created else "registry.update",
                obj=registry,
                team_id=registry.team_id,
                after={
                    "name": registry.name,
                    "url": registry.url,
                    "username": registry.username,
                    "insecure": registry.insecure,
                    "password_changed": password is not None,
                },
            )
    except IntegrityError:
        where = f"Team '{registry.team.slug}'" if registry.team else "The platform"
        raise ValidationError({"team": f"{where} already has a registry; edit it instead."}) from None
    return registry


def registry_delete(*, actor: Actor, registry: ContainerRegistry) -> None:
    _require_admin(actor, registry)
    with transaction.atomic():
        record(
            actor=actor,
            action="registry.delete",
            obj=registry,
            team_id=registry.team_id,
            before={"name": registry.name, "url": registry.url},
        )
        registry.delete()
