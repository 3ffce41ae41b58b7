"""Reads of webhooks: a team's admins see the team's webhooks."""

from django.db.models import QuerySet

from accounts.permissions import admin_teams
from deployments.models import Webhook


def webhook_list(*, user) -> QuerySet[Webhook]:
    return Webhook.objects.filter(team__in=admin_teams(user)).select_related("team").order_by("team__slug", "url")
