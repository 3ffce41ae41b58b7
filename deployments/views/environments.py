import json

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role, Team
from accounts.permissions import Action, Actor, decide, restrict
from config.forms import apply_service_errors
from deployments.models import Environment, Rollout, RolloutState
from deployments.services import environments, rollouts
from registry import selectors as registry_selectors
from registry.models import RegisteredModel


def can_administer(user, environment: Environment) -> bool:
    if environment.team_id is None:
        return user.is_superuser
    return (
        user.is_superuser or Membership.objects.filter(user=user, team_id=environment.team_id, role=Role.ADMIN).exists()
    )


@login_required
def environment_list(request):
    envs = environments.environments_for(request.user).order_by("position", "name")
    counts = {}
    for env_id in restrict(Rollout.objects.filter(state=RolloutState.SUCCEEDED), request.user).values_list(
        "environment_id", flat=True
    ):
        counts[env_id] = counts.get(env_id, 0) + 1
    can_add = request.user.is_superuser or Membership.objects.filter(user=request.user, role=Role.ADMIN).exists()
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
    environment = get_object_or_404(environments.environments_for(request.user), pk=pk)
    at_text = request.GET.get("at", "").strip()
    at = parse_datetime(at_text) if at_text else None
    if at is not None and timezone.is_naive(at):
        at = timezone.make_aware(at)
    releases = restrict(rollouts.releases_at(environment, at), request.user)
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
            "history": history,
            "at": at,
            "at_text": at_text,
            "at_invalid": bool(at_text) and at is None,
            "can_admin": can_administer(request.user, environment),
            "check": request.session.pop(f"environment-check-{pk}", None),
            "freezes": environment.freeze_windows.filter(ends_at__gt=timezone.now()).select_related("created_by"),
            "freeze_form": FreezeForm(),
        },
    )


class EnvironmentForm(forms.ModelForm):
    kube_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted; never shown again. Leave empty to keep the current one.",
    )
    kubeconfig = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono"}),
        help_text="Paste a kubeconfig instead of URL + token. Stored encrypted, never shown.",
    )
    deployment_settings = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "mono"}),
        help_text='JSON, e.g. {"replicas": 2, "memory_limit": "2Gi", "autoscaling": {"min_replicas": 2, '
        '"max_replicas": 6, "target_cpu_percent": 70}}',
    )
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False, empty_label="Global (every team)")
    kube_api_url = forms.URLField(required=False, assume_scheme="https", label="Kubernetes API URL")

    class Meta:
        model = Environment
        fields = [
            "name",
            "team",
            "description",
            "position",
            "protected",
            "required_approvals",
            "approver_groups",
            "reject_requires_comment",
            "approval_expiry_hours",
            "requires_previous_stage",
            "auto_rollback",
            "target",
            "namespace",
            "kube_api_url",
            "kube_ca_cert",
            "docker_url",
            "bind_address",
        ]
        widgets = {"kube_ca_cert": forms.Textarea(attrs={"rows": 3, "class": "mono"})}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = (
            Team.objects.all()
            if user.is_superuser
            else Team.objects.filter(pk__in=Membership.objects.filter(user=user, role=Role.ADMIN).values("team_id"))
        )
        if not user.is_superuser:
            self.fields["team"].required, self.fields["team"].empty_label = True, None
        if self.instance.pk:
            self.fields["team"].disabled = True
        self.initial.setdefault("deployment_settings", json.dumps(self.instance.deployment_settings or {}, indent=1))

    def clean_deployment_settings(self):
        text = self.cleaned_data["deployment_settings"].strip()
        try:
            return json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None

    def validate_constraints(self, exclude=None):
        pass

    def validate_unique(self):
        pass


@login_required
def environment_edit(request, pk=None):
    envs = environments.environments_for(request.user)
    instance = get_object_or_404(envs, pk=pk) if pk else Environment()
    if pk and not can_administer(request.user, instance):
        raise PermissionDenied("Only the team's admins (or site administrators) change this environment.")
    form = EnvironmentForm(request.POST or None, instance=instance, user=request.user)
    if request.method == "POST" and form.is_valid():
        environment = form.instance
        environment.deployment_settings = form.cleaned_data["deployment_settings"]
        secrets = {"kube_token": form.cleaned_data["kube_token"], "kubeconfig": form.cleaned_data["kubeconfig"]}
        try:
            environments.environment_save(
                actor=Actor.from_request(request),
                environment=environment,
                secrets=secrets,
                approver_groups=form.cleaned_data["approver_groups"],
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


class FreezeForm(forms.Form):
    starts_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="From")
    ends_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="Until")
    reason = forms.CharField(max_length=300, widget=forms.TextInput(attrs={"placeholder": "year-end close"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("starts_at") and cleaned.get("ends_at") and cleaned["ends_at"] <= cleaned["starts_at"]:
            self.add_error("ends_at", "The window must end after it starts.")
        return cleaned


@login_required
@require_POST
def freeze_create(request, pk):
    environment = get_object_or_404(environments.environments_for(request.user), pk=pk)
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
@require_POST
def freeze_delete(request, pk, window_pk):
    environment = get_object_or_404(environments.environments_for(request.user), pk=pk)
    window = get_object_or_404(environment.freeze_windows, pk=window_pk)
    environments.freeze_window_delete(actor=Actor.from_request(request), window=window)
    messages.success(request, "Freeze window removed.")
    return redirect("deployments:environment-detail", pk)


@login_required
@require_POST
def environment_test(request, pk):
    environment = get_object_or_404(environments.environments_for(request.user), pk=pk)
    report = environments.environment_check(actor=Actor.from_request(request), environment=environment)
    request.session[f"environment-check-{pk}"] = report
    return redirect("deployments:environment-detail", pk)


@login_required
def rollout_detail(request, pk):
    rollout = get_object_or_404(
        restrict(
            Rollout.objects.select_related(
                "environment", "model__team", "version", "build", "requested_by", "replaces"
            ),
            request.user,
        ),
        pk=pk,
    )
    actor = Actor.from_request(request)
    is_current = rollout.state == RolloutState.SUCCEEDED
    context = {
        "rollout": rollout,
        "model": rollout.model,
        "version": rollout.version,
        "can_rollback": is_current and decide(actor, Action.DEPLOY, rollout.model.team).allowed,
        "manifests_json": json.dumps(rollout.manifests, indent=2),
    }
    template = "deployments/_rollout_header.html" if request.htmx else "deployments/rollout_detail.html"
    return render(request, template, context)


@login_required
@require_POST
def rollout_start(request, team, name, number):
    version = registry_selectors.version_get(user=request.user, team=team, name=name, number=number)
    environment = get_object_or_404(environments.environments_for(request.user), pk=request.POST.get("environment"))
    try:
        rollout = rollouts.rollout_start(
            actor=Actor.from_request(request),
            version=version,
            environment=environment,
            reason=request.POST.get("reason", ""),
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("version-detail", team, name, number)
    messages.success(request, f"Deploying {version.display_name} to {environment.name}.")
    return redirect("deployments:rollout-detail", rollout.pk)


@login_required
@require_POST
def rollout_rollback(request, pk):
    environment = get_object_or_404(environments.environments_for(request.user), pk=pk)
    model = get_object_or_404(restrict(RegisteredModel.objects.all(), request.user), pk=request.POST.get("model"))
    try:
        rollout = rollouts.rollout_rollback(
            actor=Actor.from_request(request),
            environment=environment,
            model=model,
            reason=request.POST.get("reason", ""),
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("deployments:environment-detail", pk)
    messages.success(request, f"Rolling {model.name} back to {rollout.version.display_name}.")
    return redirect("deployments:rollout-detail", rollout.pk)
