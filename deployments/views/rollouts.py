import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.permissions import Action, Actor, decide, restrict
from config.actions import post_only
from config.api import QUEUED_FOR_LATER
from deployments import policy
from deployments.models import RolloutState
from deployments.selectors.environments import environment_list
from deployments.selectors.rollouts import rollout_list
from deployments.services import rollouts
from registry import selectors as registry_selectors
from registry.models import RegisteredModel


@login_required
def rollout_detail(request, pk):
    rollout = get_object_or_404(rollout_list(user=request.user).select_related("build", "replaces"), pk=pk)
    actor = Actor.from_request(request)
    is_current = rollout.state == RolloutState.SUCCEEDED
    context = {
        "rollout": rollout,
        "model": rollout.model,
        "version": rollout.version,
        "rollback": policy.rollback_verdict(actor, rollout.environment, rollout.model) if is_current else None,
        "can_cancel": rollout.state in RolloutState.active()
        and decide(actor, Action.DEPLOY, rollout.model, environment=rollout.environment).allowed,
        "manifests_json": json.dumps(rollout.manifests, indent=2),
    }
    template = "deployments/_rollout_header.html" if request.htmx else "deployments/rollout_detail.html"
    return render(request, template, context)


@login_required
@post_only(lambda team, name, number: reverse("version-detail", args=[team, name, number]))
def rollout_start(request, team, name, number):
    version = registry_selectors.version_get(user=request.user, team=team, name=name, number=number)
    environment = get_object_or_404(environment_list(user=request.user), pk=request.POST.get("environment"))
    try:
        rollout = rollouts.rollout_start(
            actor=Actor.from_request(request),
            version=version,
            environment=environment,
            reason=request.POST.get("reason", ""),
            break_glass_justification=request.POST.get("break_glass_justification", ""),
        )
    except ValidationError as error:
        messages.error(request, policy.reason_of(error))
        return redirect("version-detail", team, name, number)
    messages.success(request, f"Deploying {version.display_name} to {environment.name}.")
    if rollout.queued_for_later:
        messages.warning(request, QUEUED_FOR_LATER)
    return redirect("deployments:rollout-detail", rollout.pk)


@login_required
@post_only(lambda pk: reverse("deployments:environment-detail", args=[pk]))
def rollout_rollback(request, pk):
    environment = get_object_or_404(environment_list(user=request.user), pk=pk)
    model = get_object_or_404(restrict(RegisteredModel.objects.all(), request.user), pk=request.POST.get("model"))
    try:
        rollout = rollouts.rollout_rollback(
            actor=Actor.from_request(request),
            environment=environment,
            model=model,
            reason=request.POST.get("reason", ""),
            break_glass_justification=request.POST.get("break_glass_justification", ""),
        )
    except ValidationError as error:
        messages.error(request, policy.reason_of(error))
        return redirect("deployments:environment-detail", pk)
    messages.success(request, f"Rolling {model.name} back to {rollout.version.display_name}.")
    return redirect("deployments:rollout-detail", rollout.pk)


@login_required
@post_only(lambda pk: reverse("deployments:rollout-detail", args=[pk]))
def rollout_cancel(request, pk):
    rollout = get_object_or_404(rollout_list(user=request.user), pk=pk)
    try:
        rollout = rollouts.rollout_cancel(actor=Actor.from_request(request), rollout=rollout)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        done = rollout.state == RolloutState.CANCELLED
        messages.success(request, f"Rollout #{rollout.pk} {'cancelled' if done else 'is being cancelled'}.")
    return redirect("deployments:rollout-detail", rollout.pk)
