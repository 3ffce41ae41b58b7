"""Reads of promotion requests: the history a user may see, and the inbox of what they may decide."""

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from accounts.permissions import Actor, restrict, roles_by_team
from deployments.models import Build, PromotionRequest, PromotionState
from deployments.policy import approver_verdict


def promotion_list(*, user) -> QuerySet[PromotionRequest]:
    return restrict(
        PromotionRequest.objects.select_related("environment", "model__team", "version", "requested_by", "rollout"),
        user,
    )


def inbox(actor: Actor) -> list[PromotionRequest]:
    """Pending requests this person may decide and has not decided yet for their current image."""
    user = actor.user
    roles = roles_by_team(user)
    pending = (
        PromotionRequest.objects.filter(state=PromotionState.PENDING, expires_at__gt=timezone.now())
        .exclude(requested_by=user)
        .select_related("environment", "model__team", "version", "requested_by")
        .prefetch_related(
            "environment__approver_groups",
            "environment__grants",
            "approvals",
            # Who started the build (an environment may refuse them as approver); not its bill of materials.
            Prefetch("build", queryset=Build.objects.only("pk", "started_by_id")),
        )
        .order_by("created_at")
    )
    if not user.is_superuser:
        # Read only the teams' requests this person could decide: every page counts the inbox.
        pending = pending.filter(model__team_id__in=list(roles))
    return [
        promotion
        for promotion in pending
        if not any(a.approver_id == user.pk and a.digest == promotion.digest for a in promotion.approvals.all())
        and approver_verdict(actor, promotion, role=roles.get(promotion.model.team_id))
    ]
