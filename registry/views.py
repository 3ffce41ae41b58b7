from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.permissions import Action, Actor, require, teams_where, visible_teams
from config.actions import post_only
from config.api import QUEUED_FOR_LATER
from config.forms import apply_service_errors
from registry import selectors, services
from registry.forms import ModelEditForm, ModelForm, VersionUploadForm
from registry.uploads import UploadTooLarge


def creatable_teams(user):
    return teams_where(user, Action.CREATE_MODEL)


@login_required
def model_list(request):
    search = request.GET.get("q", "").strip()
    team = request.GET.get("team", "")
    show_archived = request.GET.get("archived") == "1"
    models = selectors.model_list(user=request.user, search=search, team=team, include_archived=show_archived)
    page = Paginator(models, 50).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "search": search,
        "team": team,
        "show_archived": show_archived,
        "teams": visible_teams(request.user).order_by("slug"),
        "can_create": creatable_teams(request.user).exists(),
    }
    template = "registry/_model_rows.html" if request.htmx else "registry/model_list.html"
    return render(request, template, context)


@login_required
def model_create(request):
    teams = creatable_teams(request.user)
    if not teams.exists():
        raise PermissionDenied("Registering a model needs the developer role in a team; you have it in none.")
    form = ModelForm(request.POST or None, teams=teams, initial={"team": request.GET.get("team")})
    if request.method == "POST" and form.is_valid():
        try:
            model = services.model_create(actor=Actor.from_request(request), **form.cleaned_data)
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, f"Model {model} registered. Upload its first version.")
            return redirect("registry:version-create", model.team.slug, model.name)
    return render(request, "registry/model_form.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def model_edit(request, team, name):
    model = selectors.model_get(user=request.user, team=team, name=name)
    actor = Actor.from_request(request)
    require(actor, Action.CHANGE_MODEL, model)
    form = ModelEditForm(request.POST or None, instance=model)
    if request.method == "POST" and form.is_valid():
        try:
            services.model_update(actor=actor, model=model, **form.cleaned_data)
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            messages.success(request, "Model updated.")
            return redirect("model-detail", team, name)
    return render(request, "registry/model_edit.html", {"form": form, "model": model})


@login_required
@post_only(lambda team, name: reverse("model-detail", args=[team, name]))
def model_archive(request, team, name):
    model = selectors.model_get(user=request.user, team=team, name=name)
    archived = request.POST.get("archived", "1") == "1"
    services.model_set_archived(actor=Actor.from_request(request), model=model, archived=archived)
    messages.success(request, f"Model {model} {'archived' if archived else 'restored'}.")
    return redirect("model-detail", team, name)


@login_required
def version_create(request, team, name):
    model = selectors.model_get(user=request.user, team=team, name=name)
    actor = Actor.from_request(request)
    require(actor, Action.UPLOAD_VERSION, model)
    status = 200
    if request.method == "POST":
        try:
            form = VersionUploadForm(request.POST, request.FILES)
        except UploadTooLarge as exc:
            form = VersionUploadForm(request.POST)
            form.is_valid()
            form.add_error("artifact", str(exc.detail))
            status = 413
        else:
            if form.is_valid():
                data = form.cleaned_data
                try:
                    version = services.version_create(
                        actor=actor,
                        model=model,
                        framework=data["framework"],
                        artifact=data["artifact"],
                        image_reference=data["image_reference"],
                        label=data["label"],
                        description=data["description"],
                        requirements=data["requirements"],
                        metrics=data["metrics"],
                        parameters=data["parameters"],
                        signature=data["signature"],
                        source_url=data["source_url"],
                        source_commit=data["source_commit"],
                        tags=data["tags"],
                    )
                except ValidationError as error:
                    apply_service_errors(form, error)
                else:
                    messages.success(request, f"Version {version.display_name} registered.")
                    if version.queued_for_later:
                        messages.warning(request, QUEUED_FOR_LATER)
                    return redirect("version-detail", team, name, version.number)
            status = 400
    else:
        form = VersionUploadForm()
    return render(request, "registry/version_form.html", {"form": form, "model": model}, status=status)


@login_required
def version_artifact(request, team, name, number):
    version = selectors.version_get(user=request.user, team=team, name=name, number=number)
    if not version.artifact:
        raise Http404("This version has no artifact.")
    response = FileResponse(version.artifact.open("rb"), as_attachment=True, filename=version.artifact_name)
    response["X-Checksum-SHA256"] = version.artifact_sha256
    return response
