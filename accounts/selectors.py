"""Reads for teams, memberships and API tokens, restricted to what the user may see."""

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from accounts.models import ApiToken, Membership, Team
from accounts.permissions import visible_teams


def team_list(*, user) -> QuerySet[Team]:
    return visible_teams(user).prefetch_related("memberships").order_by("slug")


def team_get(*, user, slug: str) -> Team:
    return get_object_or_404(visible_teams(user), slug=slug)


def member_list(*, team: Team) -> QuerySet[Membership]:
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def token_list(*, user) -> QuerySet[ApiToken]:
    """The user's own tokens: nobody sees anyone else's, site administrators included."""
    return ApiToken.objects.filter(user=user).prefetch_related("teams")


def token_get(*, user, pk: int) -> ApiToken:
    return get_object_or_404(token_list(user=user), pk=pk)
