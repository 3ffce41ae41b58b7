from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.forms import MemberForm, TokenForm
from accounts.permissions import Action, Actor, decide
from config.forms import apply_service_errors


@login_required
def token_list(request):
    form = TokenForm(request.POST or None)
    created_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            token, created_secret = services.token_create(user=request.user, **form.cleaned_data)
        except ValidationError as error:
            apply_service_errors(form, error)
        else:
            form = TokenForm()
            messages.success(request, f"Token '{token.name}' created. Copy it now: it will not be shown again.")
    tokens = selectors.token_list(user=request.user)
    return render(
        request,
        "accounts/tokens.html",
        {"form": form, "tokens": tokens, "created_secret": created_secret},
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def token_revoke(request, pk):
    token = selectors.token_get(user=request.user, pk=pk)
    if services.token_revoke(token=token, by=Actor.from_request(request)):
        messages.success(request, f"Token '{token.name}' revoked. Scripts using it will get 401.")
    return redirect("accounts:tokens")


@login_required
def team_list(request):
    teams = selectors.team_list(user=request.user)
    return render(request, "accounts/team_list.html", {"teams": teams})


@login_required
def team_detail(request, slug):
    team = selectors.team_get(user=request.user, slug=slug)
    actor = Actor.from_request(request)
    can_manage = decide(actor, Action.MANAGE_TEAM, team).allowed
    form = MemberForm(request.POST or None)
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied(decide(actor, Action.MANAGE_TEAM, team).reason)
        if form.is_valid():
            membership = services.membership_set(
                actor=actor, team=team, user=form.cleaned_data["username"], role=form.cleaned_data["role"]
            )
            messages.success(request, f"{membership.user.username} is now {membership.get_role_display().lower()}.")
            return redirect("accounts:team-detail", slug)
    members = selectors.member_list(team=team)
    return render(
        request,
        "accounts/team_detail.html",
        {
            "team": team,
            "members": members,
            "can_manage": can_manage,
            "form": form,
        },
        status=400 if form.errors else 200,
    )


@login_required
@require_POST
def member_remove(request, slug, username):
    team = selectors.team_get(user=request.user, slug=slug)
    user = get_object_or_404(get_user_model(), username=username)
    try:
        services.membership_remove(actor=Actor.from_request(request), team=team, user=user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"{username} removed from {team.slug}.")
    return redirect("accounts:team-detail", slug)
