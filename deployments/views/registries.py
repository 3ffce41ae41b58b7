from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.models import Membership, Role, Team
from accounts.permissions import Actor
from config.forms import apply_service_errors
from deployments import selectors
from deployments.models import ContainerRegistry
from deployments.services import registries


class RegistryForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted; never shown again. Leave empty to keep the current one.",
    )
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False, empty_label="Global (every team)")

    class Meta:
        model = ContainerRegistry
        fields = ["name", "team", "url", "username", "insecure"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        teams = (
            Team.objects.all()
            if user.is_superuser
            else Team.objects.filter(pk__in=Membership.objects.filter(user=user, role=Role.ADMIN).values("team_id"))
        )
        self.fields["team"].queryset = teams
        if not user.is_superuser:
            self.fields["team"].required = True
            self.fields["team"].empty_label = None
        if self.instance.pk:
            self.fields["team"].disabled = True

    def validate_constraints(self, exclude=None):
        pass  # the service explains a duplicate better

    def validate_unique(self):
        pass


def _can_manage_any(user) -> bool:
    return user.is_superuser or Membership.objects.filter(user=user, role=Role.ADMIN).exists()


@login_required
def registry_list(request):
    if not _can_manage_any(request.user):
        raise PermissionDenied("Registries are managed by team admins and site administrators.")
    return render(request, "deployments/registry_list.html", {"registries": selectors.registry_list(user=request.user)})


@login_required
def registry_edit(request, pk=None):
    if not _can_manage_any(request.user):
        raise PermissionDenied("Registries are managed by team admins and site administrators.")
    instance = get_object_or_404(selectors.registry_list(user=request.user), pk=pk) if pk else ContainerRegistry()
    form = RegistryForm(request.POST or None, instance=instance, user=request.user)
    if request.method == "POST" and form.is_valid():
        password = form.cleaned_data["password"] or None
        try:
            registries.registry_save(actor=Actor.from_request(request), registry=form.instance, password=password)
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, f"Registry '{form.instance.name}' saved.")
            return redirect("deployments:registry-list")
    return render(
        request,
        "deployments/registry_form.html",
        {"form": form, "registry": instance},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def registry_delete(request, pk):
    registry = get_object_or_404(selectors.registry_list(user=request.user), pk=pk)
    registries.registry_delete(actor=Actor.from_request(request), registry=registry)
    messages.success(request, f"Registry '{registry.name}' deleted.")
    return redirect("deployments:registry-list")
