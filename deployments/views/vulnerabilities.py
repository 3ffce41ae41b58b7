"""Accepting a finding for a model in an environment, and revoking the acceptance (environment admins)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse

from accounts.permissions import Actor, restrict
from config.actions import post_only
from deployments.forms.vulnerabilities import AcceptanceForm
from deployments.selectors.environments import environment_list
from deployments.services import vulnerabilities
from registry.models import RegisteredModel


def acceptable_models(environment, user):
    """The models an acceptance in this environment may name: those of its team (all visible, if global)."""
    models = restrict(RegisteredModel.objects.filter(archived=False).select_related("team"), user)
    return models.filter(team=environment.team) if environment.team_id else models


@login_required
@post_only(lambda pk: reverse("deployments:environment-detail", args=[pk]))
def acceptance_create(request, pk):
    environment = get_object_or_404(environment_list(user=request.user), pk=pk)
    form = AcceptanceForm(request.POST, models=acceptable_models(environment, request.user))
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("deployments:environment-detail", pk)
    try:
        acceptance = vulnerabilities.acceptance_create(
            actor=Actor.from_request(request), environment=environment, **form.cleaned_data
        )
    except ValidationError as error:  # a refusal (PermissionDenied) answers 403 with its reason
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request,
            f"{acceptance.advisory_id} is accepted for {acceptance.model.name} in {environment.name} "
            f"until {acceptance.expires_at:%Y-%m-%d %H:%M}.",
        )
    return redirect("deployments:environment-detail", pk)


@login_required
@post_only(lambda pk, acceptance_pk: reverse("deployments:environment-detail", args=[pk]))
def acceptance_revoke(request, pk, acceptance_pk):
    environment = get_object_or_404(environment_list(user=request.user), pk=pk)
    acceptance = get_object_or_404(restrict(environment.finding_acceptances.all(), request.user), pk=acceptance_pk)
    try:
        vulnerabilities.acceptance_revoke(actor=Actor.from_request(request), acceptance=acceptance)
    except ValidationError as error:  # a refusal (PermissionDenied) answers 403 with its reason
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"The acceptance of {acceptance.advisory_id} is revoked.")
    return redirect("deployments:environment-detail", pk)
