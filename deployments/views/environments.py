from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

from accounts.permissions import Action, Actor, decide, manages_any_team, require, restrict
from config.actions import post_only
from config.forms import apply_service_errors
from deployments import policy
from deployments.forms.environments import EnvironmentForm, FreezeForm
from deployments.forms.vulnerabilities import AcceptanceForm
from deployments.models import Environment, Rollout, RolloutState
from deployments.selectors.environments import environment_list as visible_environments
from deployments.selectors.environments import grants_shown
from deployments.selectors.rollouts import attempts_beside, moment, releases_at
from deployments.selectors.vulnerabilities import vulnerable_since_release
from deployments.services import environments
from deployments.views.vulnerabilities import acceptable_models


@login_required
def environment_list(request):
    envs = visible_environments(user=request.user).order_by("position", "name")
    counts = {}
    for env_id in restrict(Rollout.objects.filter(state=RolloutState.SUCCEEDED), request.user).values_list(
        "environment_id", flat=True
    ):
        counts[env_id] = counts.get(env_id, 0) + 1
    can_add = manages_any_team(request.user)
    return render(
        request,
        "deployments/environment_list.html",
        {
            "environments": [(env, counts.get(env.pk, 0)) for env in envs],
            "can_add": can_add,
        },
    )


@login_required
def environment_detail(request, pk):
    environment = get_object_or_404(visible_environments(user=request.user).prefetch_related("grants__team"), pk=pk)
    at_text = request.GET.get("at", "").strip()
    at = moment(at_text) if at_text else None
    actor = Actor.from_request(request)
    releases = list(restrict(releases_at(environment, at), request.user))
    frozen = policy.active_freeze(environment)
    verdicts: dict[int, tuple] = {}  # the verdicts depend on the model's team only: asked once per team
    for release in releases:
        # The Roll back button: shown to who may roll back; during a freeze, to who may break the glass.
        if release.model.team_id not in verdicts:
            rollback = policy.rollback_verdict(actor, environment, release.model)
            glass = None
            if rollback and frozen and not environment.rollback_during_freeze:
                glass = decide(actor, Action.BREAK_GLASS, release.model, environment=environment)
            verdicts[release.model.team_id] = (rollback, glass)
        release.rollback, release.break_glass = verdicts[release.model.team_id]
    vulnerable = vulnerable_since_release(releases)
    for release in releases:
        release.vulnerable = vulnerable.get(release.pk)
    attempts = attempts_beside(environment, at, user=request.user)
    for release in releases:
        release.attempts = attempts.pop(release.model_id, [])
    history = Paginator(
        restrict(environment.rollouts.select_related("model__team", "version", "requested_by"), request.user).order_by(
            "-created_at"
        ),
        25,
    ).get_page(request.GET.get("page"))
    return render(
        request,
        "deployments/environment_detail.html",
        {
            "environment": environment,
            "releases": releases,
            "attempts_only": list(attempts.values()),
            "history": history,
            "at": at,
            "at_text": at_text,
            "at_invalid": bool(at_text) and at is None,
            "can_admin": decide(actor, Action.MANAGE_TEAM, environment).allowed,
            "grants": grants_shown(environment, user=request.user) if environment.team_id is None else [],
            "frozen": frozen,
            "check": request.session.pop(f"environment-check-{pk}", None),
            "freezes": environment.freeze_windows.filter(ends_at__gt=timezone.now()).select_related("created_by"),
            "freeze_form": FreezeForm(),
            "acceptance_form": AcceptanceForm(models=acceptable_models(environment, request.user)),
            "acceptances": restrict(
                environment.finding_acceptances.select_related("model", "accepted_by"), request.user
            ).order_by("-created_at")[:50],
        },
    )


@login_required
def environment_edit(request, pk=None):
    envs = visible_environments(user=request.user)
    instance = get_object_or_404(envs, pk=pk) if pk else Environment()
    if pk:
        require(Actor.from_request(request), Action.MANAGE_TEAM, instance, obj=instance)
    elif not manages_any_team(request.user):
        raise PermissionDenied("Adding an environment needs the admin role in a team.")
    form = EnvironmentForm(request.POST or None, instance=instance, user=request.user)
    if request.method == "POST" and form.is_valid():
        environment = form.instance
        environment.deployment_settings = form.cleaned_data["deployment_settings"]
        secrets = {field: form.cleaned_data[field] for field in environments.SECRET_FIELDS}
        try:
            environments.environment_save(
                actor=Actor.from_request(request),
                environment=environment,
                secrets=secrets,
                approver_groups=form.cleaned_data["approver_groups"],
                grants=form.cleaned_data.get("grants"),  # None: not offered to this user, or nothing posted
            )
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, f"Environment '{environment.name}' saved.")
            return redirect("deployments:environment-detail", environment.pk)
    return render(
        request,
        "deployments/environment_form.html",
        {"form": form, "environment": instance},
        status=400 if form.errors else 200,
    )


@login_required
@post_only(lambda pk: reverse("deployments:environment-detail", args=[pk]))
def freeze_create(request, pk):
    environment = get_object_or_404(visible_environments(user=request.user), pk=pk)
    form = FreezeForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    else:
        try:
            environments.freeze_window_create(
                actor=Actor.from_request(request), environment=environment, **form.cleaned_data
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, f"Deployments to {environment.name} are frozen for that window.")
    return redirect("deployments:environment-detail", pk)


@login_required
@post_only(lambda pk, window_pk: reverse("deployments:environment-detail", args=[pk]))
def freeze_delete(request, pk, window_pk):
    environment = get_object_or_404(visible_environments(user=request.user), pk=pk)
    window = get_object_or_404(environment.freeze_windows, pk=window_pk)
    environments.freeze_window_delete(actor=Actor.from_request(request), window=window)
    messages.success(request, "Freeze window removed.")
    return redirect("deployments:environment-detail", pk)


@login_required
@post_only(lambda pk: reverse("deployments:environment-detail", args=[pk]))
def environment_test(request, pk):
    environment = get_object_or_404(visible_environments(user=request.user), pk=pk)
    report = environments.environment_check(actor=Actor.from_request(request), environment=environment)
    request.session[f"environment-check-{pk}"] = report
    return redirect("deployments:environment-detail", pk)
