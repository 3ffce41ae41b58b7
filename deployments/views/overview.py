"""The overview: every model by every environment, with what is pending or wrong highlighted."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from accounts.permissions import manages_any_team, visible_teams
from deployments.selectors.environments import environment_list, environments_of_team
from deployments.selectors.overview import MAX_MODELS, matrix, overview_models, recent_activity
from deployments.selectors.vulnerabilities import database_status


@login_required
def overview(request):
    team = request.GET.get("team", "")
    models = list(overview_models(request.user, team)[:MAX_MODELS])
    environments = environment_list(user=request.user).order_by("position", "name")
    if team:
        environments = environments_of_team(environments, user=request.user, team=team)
    environments = list(environments)
    rows = matrix(models, environments, request.user)
    activity = recent_activity(request.user)
    context = {
        "rows": rows,
        "environments": environments,
        "teams": visible_teams(request.user).order_by("slug"),
        "team": team,
        "activity": activity,
        "drifted": sum(1 for _, cells in rows for c in cells if c["release"] and c["release"].drift_problem),
        "pending": sum(1 for _, cells in rows for c in cells if c["pending"]),
        "vulnerable": sum(1 for _, cells in rows for c in cells if c["vulnerable"]),
        "vulnerability_database": database_status() if manages_any_team(request.user) else None,
        "running": sum(1 for _, cells in rows for c in cells if c["active"]),
    }
    template = "deployments/_overview_body.html" if request.htmx else "deployments/overview.html"
    return render(request, template, context)
