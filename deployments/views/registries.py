from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.permissions import Actor, manages_any_team
from config.actions import post_only
from config.forms import apply_service_errors
from deployments.forms.registries import RegistryForm
from deployments.models import ContainerRegistry
from deployments.selectors.registries import registry_list as visible_registries
from deployments.services import registries


@login_required
def registry_list(request):
    if not manages_any_team(request.user):
        raise PermissionDenied("Registries are managed by team admins and site administrators; you are neither.")
    return render(request, "deployments/registry_list.html", {"registries": visible_registries(user=request.user)})


@login_required
def registry_edit(request, pk=None):
    if not manages_any_team(request.user):
        raise PermissionDenied("Registries are managed by team admins and site administrators; you are neither.")
    instance = get_object_or_404(visible_registries(user=request.user), pk=pk) if pk else ContainerRegistry()
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
@post_only(lambda pk: reverse("deployments:registry-edit", args=[pk]))
def registry_delete(request, pk):
    registry = get_object_or_404(visible_registries(user=request.user), pk=pk)
    registries.registry_delete(actor=Actor.from_request(request), registry=registry)
    messages.success(request, f"Registry '{registry.name}' deleted.")
    return redirect("deployments:registry-list")
