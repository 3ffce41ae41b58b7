"""Writes for teams, memberships and API tokens."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import tokens
from accounts.models import ROLE_RANK, ApiToken, Membership, Role, Team, TokenScope
from accounts.permissions import Action, Actor, Refused, require
from audit.services import record

User = get_user_model()


def membership_set(*, actor: Actor, team: Team, user, role: Role) -> Membership:
    require(actor, Action.MANAGE_TEAM, team)
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    before = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
        record(
            actor=actor,
            action="membership.set",
            obj=membership,
            team_id=team.pk,
            before={"user": user.get_username(), "role": before},
            after={"user": user.get_username(), "role": role},
        )
    return membership


def membership_remove(*, actor: Actor, team: Team, user) -> None:
    require(actor, Action.MANAGE_TEAM, team)
    remaining_admins = Membership.objects.filter(team=team, role=Role.ADMIN).exclude(user=user)
    if not remaining_admins.exists() and Membership.objects.filter(team=team, user=user, role=Role.ADMIN):
        raise ValidationError("A team keeps at least one admin; make someone else admin first.")
    with transaction.atomic():
        Membership.objects.filter(team=team, user=user).delete()
        record(actor=actor, action="membership.remove", obj=team, team_id=team.pk, before={"user": user.get_username()})


def token_create(
    *,
    user,
    name: str,
    expires_in_days: int | None = None,
    scopes: list[str] | None = None,
    teams: list[str] | None = None,
    environments: list[str] | None = None,
    actor: Actor | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its secret, which is never stored or shown again. `actor`: the
    request's (where from, with what), when a person asks for it."""
    days = expires_in_days or settings.API_TOKEN_DEFAULT_DAYS
    errors = {}
    if not name.strip():
        errors["name"] = "Give the token a name, so you can tell it apart later."
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        errors["expires_in_days"] = f"Choose between 1 and {settings.API_TOKEN_MAX_DAYS} days."
    scopes = list(dict.fromkeys(scopes or [TokenScope.READ, TokenScope.DEPLOY]))
    unknown = [s for s in scopes if s not in TokenScope.values]
    if unknown:
        errors["scopes"] = f"Unknown scope {unknown[0]!r}; choose from {', '.join(TokenScope.values)}."
    limited_teams = (
        list(Team.objects.filter(slug__in=teams or [], memberships__user=user))
        if not user.is_superuser
        else list(Team.objects.filter(slug__in=teams or []))
    )
    missing = sorted(set(teams or []) - {t.slug for t in limited_teams})
    if missing:
        errors["teams"] = f"You are not a member of team '{missing[0]}'."
    if errors:
        raise ValidationError(errors)
    secret, prefix = tokens.generate()
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=user,
                name=name.strip(),
                prefix=prefix,
                digest=tokens.digest(secret),
                scopes=scopes,
                environment_names=sorted(set(environments or [])),
                expires_at=timezone.now() + timedelta(days=days),
            )
            token.teams.set(limited_teams)
            record(
                actor=actor or user,
                action="token.create",
                obj=token,
                after={
                    "name": token.name,
                    "scopes": scopes,
                    "expires_at": token.expires_at,
                    "teams": sorted(t.slug for t in limited_teams),
                    "environments": token.environment_names,
                },
            )
    except IntegrityError:
        raise ValidationError({"name": "You already have a token with this name."}) from None
    return token, secret


def token_revoke(*, token: ApiToken, actor: Actor | None = None) -> bool:
    """Revoke; returns False when it was already revoked (a double click does nothing twice).

    Tokens are managed from a signed-in session: a token may revoke itself (a leaked one, at once),
    never its owner's other tokens."""
    if actor is not None and actor.token is not None and actor.token.pk != token.pk:
        reason = "API tokens are revoked from a signed-in session; a token may only revoke itself"
        event = record(actor=actor, action="token.revoke", obj=token, outcome="refused", reason=reason)
        raise Refused(reason[0].upper() + reason[1:] + ".", event=event)
    with transaction.atomic():
        revoked = bool(ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()))
        if revoked:
            record(actor=actor or token.user, action="token.revoke", obj=token, after={"name": token.name})
    return revoked


SSO = "via SSO"  # how the audit trail tells changes made by the provider's groups from a person's


def memberships_sync_from_sso(*, actor: Actor, user, groups) -> list[str]:
    """Make the user's memberships in the teams SLIPWAY_OIDC_GROUP_ROLES names what their groups say:
    added, changed or removed, each on the audit trail "via SSO". Teams the setting does not name
    are managed by hand and left alone. Returns what changed, for the log.

    The provider is the source of truth for these teams, so the "a team keeps an admin" rule of
    `membership_remove` does not hold here: site admins can still manage such a team.
    """
    groups = set(groups)
    wanted: dict[str, tuple[str, list[str]]] = {}  # team slug -> (highest role, the groups giving it)
    for group, slug, role in settings.OIDC_GROUP_ROLES:
        if group not in groups:
            wanted.setdefault(slug, ("", []))
            continue
        best, given_by = wanted.get(slug, ("", []))
        if not best or ROLE_RANK[role] > ROLE_RANK[best]:
            best = role
        wanted[slug] = (best, [*given_by, group])
    teams = {team.slug: team for team in Team.objects.filter(slug__in=wanted)}
    current = {
        m.team.slug: m for m in Membership.objects.filter(user=user, team__in=teams.values()).select_related("team")
    }
    changes = []
    with transaction.atomic():
        for slug, (role, given_by) in sorted(wanted.items()):
            team = teams.get(slug)
            if team is None:
                continue  # named in the setting but not (yet) created: nothing to join
            membership = current.get(slug)
            before = membership.role if membership is not None else None
            if (role or None) == before:
                continue
            reason = (
                f"{SSO}: groups {', '.join(sorted(given_by))}" if given_by else f"{SSO}: in none of the team's groups"
            )
            username = user.get_username()
            if role:
                membership, _ = Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
                record(
                    actor=actor,
                    action="membership.set",
                    obj=membership,
                    team_id=team.pk,
                    reason=reason,
                    before={"user": username, "role": before},
                    after={"user": username, "role": role},
                )
                changes.append(f"{slug}: {before or 'not a member'} -> {role}")
            else:
                Membership.objects.filter(team=team, user=user).delete()
                record(
                    actor=actor,
                    action="membership.remove",
                    obj=team,
                    team_id=team.pk,
                    reason=reason,
                    before={"user": username, "role": before},
                )
                changes.append(f"{slug}: {before} -> not a member")
    return changes


def site_admin_sync_from_sso(*, actor: Actor, user, groups) -> bool:
    """Site admin exactly when in one of SLIPWAY_OIDC_ADMIN_GROUPS (when that is set); on the audit
    trail "via SSO" when it changes. Returns whether it changed."""
    if not settings.OIDC_ADMIN_GROUPS:
        return False
    admin = bool(set(groups) & set(settings.OIDC_ADMIN_GROUPS))
    if user.is_superuser == admin and user.is_staff == admin:
        return False
    before = user.is_superuser
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_superuser=admin, is_staff=admin)
        user.is_superuser = user.is_staff = admin
        given_by = sorted(set(groups) & set(settings.OIDC_ADMIN_GROUPS))
        record(
            actor=actor,
            action="user.site_admin",
            obj=user,
            reason=f"{SSO}: groups {', '.join(given_by)}" if admin else f"{SSO}: in none of the site admin groups",
            before={"site_admin": before},
            after={"site_admin": admin},
        )
    return True
