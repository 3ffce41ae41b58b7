from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from accounts.permissions import Action, Actor, decide
from config.actions import post_only
from deployments.models import BuildState, Severity
from deployments.selectors.builds import build_list
from deployments.selectors.vulnerabilities import database_status, findings_filtered
from deployments.services import builds
from registry import selectors as registry_selectors


@login_required
def build_detail(request, pk):
    build = get_object_or_404(build_list(user=request.user).defer(None), pk=pk)
    wanted = {name: request.GET.get(name, "") for name in ("min_severity", "ecosystem", "q")}
    bill = build.bill_of_materials
    context = {
        "findings": findings_filtered(build, **wanted) if build.scanned_at else [],
        "filters": wanted,
        "filtered": any(wanted.values()),
        "severities": [(s, build.vulnerability_counts.get(s, 0)) for s in reversed(Severity.values)],
        "vulnerability_database": database_status(),
        "python_packages": [i for i in bill if i.get("ecosystem", "PyPI") == "PyPI" or i.get("ecosystem") == "generic"],
        "debian_packages": [i for i in bill if i.get("ecosystem", "").startswith("Debian")],
        "build": build,
        "version": build.version,
        "model": build.version.model,
        "can_cancel": decide(Actor.from_request(request), Action.START_BUILD, build).allowed
        and build.state in BuildState.active(),
    }
    template = "deployments/_build_header.html" if request.htmx else "deployments/build_detail.html"
    return render(request, template, context)


@login_required
@post_only(lambda team, name, number: reverse("version-detail", args=[team, name, number]))
def build_start(request, team, name, number):
    version = registry_selectors.version_get(user=request.user, team=team, name=name, number=number)
    try:
        build = builds.build_start(actor=Actor.from_request(request), version=version)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("version-detail", team, name, number)
    messages.success(request, f"Build #{build.pk} queued.")
    return redirect("deployments:build-detail", build.pk)


@login_required
@post_only(lambda pk: reverse("deployments:build-detail", args=[pk]))
def build_cancel(request, pk):
    build = get_object_or_404(build_list(user=request.user), pk=pk)
    try:
        builds.build_cancel(actor=Actor.from_request(request), build=build)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Build #{build.pk} is being cancelled.")
    return redirect("deployments:build-detail", build.pk)
