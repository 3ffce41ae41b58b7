from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.permissions import Action, Actor, decide
from config.actions import post_only
from config.errors import Conflict
from deployments import policy
from deployments.models import PromotionState
from deployments.selectors.comparisons import change_rows, shown_context
from deployments.selectors.environments import environment_list
from deployments.selectors.promotions import inbox
from deployments.selectors.promotions import promotion_list as visible_promotions
from deployments.services import promotions
from registry import selectors as registry_selectors


@login_required
def promotion_list(request):
    actor = Actor.from_request(request)
    state = request.GET.get("state", "")
    history = visible_promotions(user=request.user).order_by("-created_at")
    if state in PromotionState.values:
        history = history.filter(state=state)
    return render(
        request,
        "deployments/promotion_list.html",
        {
            "inbox": inbox(actor),
            "history": Paginator(history, 25).get_page(request.GET.get("page")),
            "state": state,
            "states": PromotionState.choices,
        },
    )


@login_required
def promotion_detail(request, pk):
    promotion = get_object_or_404(
        visible_promotions(user=request.user)
        .select_related("build", "rollout")
        .prefetch_related("approvals__approver", "environment__approver_groups"),
        pk=pk,
    )
    actor = Actor.from_request(request)
    verdict = policy.approver_verdict(actor, promotion)
    approvals = promotion.approvals.all()
    decided = any(a.approver_id == request.user.pk and a.digest == promotion.digest for a in approvals)
    changes = shown_context(promotion)
    return render(
        request,
        "deployments/promotion_detail.html",
        {
            "promotion": promotion,
            "changes": changes,
            "rows": change_rows(changes),
            "approvers": policy.who_may_approve(promotion),
            "verdict": verdict,
            "can_decide": promotion.state == PromotionState.PENDING and verdict.allowed and not decided,
            "can_cancel": promotion.state == PromotionState.PENDING and policy.cancel_verdict(actor, promotion).allowed,
            "deploy_verdict": decide(actor, Action.DEPLOY, promotion, environment=promotion.environment),
            "break_glass_verdict": decide(actor, Action.BREAK_GLASS, promotion, environment=promotion.environment),
            "frozen": policy.active_freeze(promotion.environment),
            "counted": sum(1 for a in approvals if a.decision == "approve" and a.digest == promotion.digest),
        },
    )


@login_required
@post_only(lambda team, name, number: reverse("version-detail", args=[team, name, number]))
def promotion_create(request, team, name, number):
    version = registry_selectors.version_get(user=request.user, team=team, name=name, number=number)
    environment = get_object_or_404(environment_list(user=request.user), pk=request.POST.get("environment"))
    try:
        promotion = promotions.promotion_request(
            actor=Actor.from_request(request),
            version=version,
            environment=environment,
            reason=request.POST.get("reason", ""),
            break_glass_justification=request.POST.get("break_glass_justification", ""),
        )
    except ValidationError as error:  # a refusal (PermissionDenied) answers 403 with its reason
        messages.error(request, policy.reason_of(error))
        return redirect("version-detail", team, name, number)
    messages.success(request, f"Promotion to {environment.name} requested; approvers have been told.")
    return redirect("deployments:promotion-detail", promotion.pk)


@login_required
@post_only(lambda pk, decision: reverse("deployments:promotion-detail", args=[pk]))
def promotion_decide(request, pk, decision):
    promotion = get_object_or_404(visible_promotions(user=request.user), pk=pk)
    actor = Actor.from_request(request)
    comment = request.POST.get("comment", "")
    # The digest the page showed: approving a request rebuilt since then is refused (Conflict).
    digest = request.POST.get("digest", "")
    justification = request.POST.get("break_glass_justification", "")
    actions = {
        "approve": lambda: promotions.promotion_approve(
            actor=actor, promotion=promotion, digest=digest, comment=comment
        ),
        "reject": lambda: promotions.promotion_reject(actor=actor, promotion=promotion, digest=digest, comment=comment),
        "cancel": lambda: promotions.promotion_cancel(actor=actor, promotion=promotion),
        "deploy": lambda: promotions.promotion_deploy(
            actor=actor, promotion=promotion, break_glass_justification=justification
        ),
    }
    if decision not in actions:
        raise Http404("No such decision.")
    try:
        actions[decision]()
    except (ValidationError, Conflict) as error:  # a refusal (PermissionDenied) answers 403 with its reason
        messages.error(request, policy.reason_of(error))
    else:
        messages.success(
            request,
            {
                "approve": "Approval recorded.",
                "reject": "Request rejected.",
                "cancel": "Request cancelled.",
                "deploy": "Deploying.",
            }[decision],
        )
    return redirect("deployments:promotion-detail", pk)
