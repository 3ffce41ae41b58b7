"""The model and version pages: what was uploaded (registry) and what became of it (builds, rollouts)."""

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from accounts.permissions import Action, Actor, decide
from deployments.models import PromotionState
from deployments.policy import deploy_verdicts
from deployments.selectors.builds import build_list, latest_builds_for_versions
from deployments.selectors.comparisons import compare_versions
from deployments.selectors.environments import environment_list
from deployments.selectors.promotions import promotion_list
from deployments.selectors.rollouts import current_releases
from registry import selectors as registry_selectors


@login_required
def model_detail(request, team, name):
    model = registry_selectors.model_get(user=request.user, team=team, name=name)
    actor = Actor.from_request(request)
    versions = Paginator(registry_selectors.version_list(model=model), 50).get_page(request.GET.get("page"))
    releases = current_releases(model)
    running_in = {}
    for release in releases:
        running_in.setdefault(release.version_id, []).append(release)
    latest_builds = latest_builds_for_versions(v.pk for v in versions)
    rows = [(v, latest_builds.get(v.pk), running_in.get(v.pk, [])) for v in versions]
    return render(
        request,
        "deployments/model_detail.html",
        {
            "model": model,
            "versions": versions,
            "rows": rows,
            "releases": releases,
            "metric_names": sorted({key for version in versions for key in version.metrics}),
            "can_upload": decide(actor, Action.UPLOAD_VERSION, model).allowed and not model.archived,
            "can_edit": decide(actor, Action.CHANGE_MODEL, model).allowed,
            "can_archive": decide(actor, Action.ARCHIVE_MODEL, model).allowed,
        },
    )


@login_required
def version_detail(request, team, name, number):
    version = registry_selectors.version_get(user=request.user, team=team, name=name, number=number)
    version_builds = list(build_list(user=request.user).filter(version=version).order_by("-created_at")[:20])
    actor = Actor.from_request(request)
    context = {
        "version": version,
        "model": version.model,
        "builds": version_builds,
        "latest_build": version_builds[0] if version_builds else None,
        "can_build": decide(actor, Action.START_BUILD, version).allowed,
    }
    if request.htmx:
        return render(request, "deployments/_build_summary.html", context)
    releases = {release.environment_id: release for release in current_releases(version.model)}
    deployable = any(b.state == "succeeded" for b in version_builds)
    environments = [
        environment
        for environment in environment_list(user=request.user).prefetch_related("grants").order_by("position", "name")
        if environment.team_id in (None, version.model.team_id)
    ]
    verdicts = deploy_verdicts(actor, version, environments)
    context["environments"] = [(env, releases.get(env.pk), verdicts[env.pk]) for env in environments]
    pending = promotion_list(user=request.user).filter(model=version.model, state=PromotionState.PENDING)
    context.update(deployable=deployable, pending={p.environment_id: p for p in pending})
    return render(request, "deployments/version_detail.html", context)


@login_required
def version_compare(request, team, name):
    model = registry_selectors.model_get(user=request.user, team=team, name=name)
    numbers = list(model.versions.order_by("-number").values_list("number", flat=True)[:200])
    try:
        a = int(request.GET.get("a") or (numbers[1] if len(numbers) > 1 else 0))
        b = int(request.GET.get("b") or (numbers[0] if numbers else 0))
    except ValueError:
        a = b = 0
    versions = {v.number: v for v in model.versions.filter(number__in=[a, b])}
    context = {"model": model, "numbers": numbers, "a": a, "b": b}
    if a in versions and b in versions:
        context.update(older=versions[a], newer=versions[b], changes=compare_versions(versions[a], versions[b]))
    elif request.GET:
        context["error"] = "Choose two versions of this model."
    return render(request, "deployments/version_compare.html", context)
