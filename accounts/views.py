import logging

import requests
from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render, resolve_url
from django.urls import reverse
from django.views import View
from django.views.decorators.http import require_POST
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from accounts import selectors, services, sso
from accounts.forms import MemberForm, SignInForm, TokenForm
from accounts.permissions import Action, Actor, decide, require
from audit.services import record
from config.actions import post_only
from config.forms import apply_service_errors

logger = logging.getLogger(__name__)


@login_required
def token_list(request):
    form = TokenForm(request.POST or None)
    created_secret = None
    if request.method == "POST" and form.is_valid():
        try:
            token, created_secret = services.token_create(
                user=request.user, actor=Actor.from_request(request), **form.cleaned_data
            )
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
@post_only(lambda pk: reverse("accounts:tokens"))
def token_revoke(request, pk):
    token = selectors.token_get(user=request.user, pk=pk)
    if services.token_revoke(token=token, actor=Actor.from_request(request)):
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
        require(actor, Action.MANAGE_TEAM, team)
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
@post_only(lambda slug, username: reverse("accounts:team-detail", args=[slug]))
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


class SignInView(auth_views.LoginView):
    """The sign-in page: the provider's button when SSO is set up, and the password form unless
    passwords are turned off (then it shows only for the break-glass accounts, at ?local=1)."""

    form_class = SignInForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        show_passwords = settings.LOCAL_LOGIN or "local" in self.request.GET or self.request.method == "POST"
        context.update(
            sso_enabled=settings.SSO_ENABLED,
            provider_name=settings.OIDC_PROVIDER_NAME,
            local_login=settings.LOCAL_LOGIN,
            show_password_form=show_passwords,
        )
        return context


@require_POST
def sign_out(request):
    """Sign out of Slipway, and of the provider too when it offers RP-initiated logout."""
    id_token = request.session.get("oidc_id_token")
    provider_logout = None
    if settings.SSO_ENABLED and id_token:
        provider_logout = sso.end_session_url(
            id_token=id_token,
            post_logout_redirect_uri=request.build_absolute_uri(resolve_url(settings.LOGOUT_REDIRECT_URL)),
        )
    auth.logout(request)
    return redirect(provider_logout or settings.LOGOUT_REDIRECT_URL)


def sso_refused(request, reason: str, *, status: int, audit: bool = False):
    """A sign-in through the provider that did not happen, said plainly. On the audit trail only when
    the provider did answer with tokens (`audit`): anybody can call the callback with made-up values,
    and that must not fill the trail."""
    logger.warning("SSO sign-in refused: %s", reason)
    if audit:
        record(
            actor=Actor.from_request(request),
            action="user.sign_in",
            outcome="refused",
            reason=f"{services.SSO}: {reason}",
        )
    return render(
        request,
        "registration/sso_refused.html",
        {"reason": reason, "provider_name": settings.OIDC_PROVIDER_NAME},
        status=status,
    )


class SsoStartView(OIDCAuthenticationRequestView):
    """Off to the provider's sign-in page, with state, nonce and PKCE kept in the session."""

    def __init__(self, **kwargs):
        # The library reads the provider's endpoint here; ours comes from discovery, in get().
        View.__init__(self, **kwargs)

    def get(self, request):
        if not settings.SSO_ENABLED:
            raise Http404("Single sign-on is not set up.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = sso.provider()["authorization_endpoint"]
        except sso.SsoUnavailable as error:
            return sso_refused(request, str(error), status=503)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back (the callback URL registered there)."""

    def get(self, request):
        if not settings.SSO_ENABLED:
            raise Http404("Single sign-on is not set up.")
        try:
            return super().get(request)
        except sso.SignInRefused as error:
            return sso_refused(request, str(error), status=403, audit=True)
        except SuspiciousOperation:
            return sso_refused(
                request,
                "This answer from the identity provider belongs to no sign-in started here: start again.",
                status=400,
            )
        except sso.SsoUnavailable as error:
            return sso_refused(request, str(error), status=503)
        except requests.RequestException as error:
            return sso_refused(request, f"The identity provider did not answer as expected: {error}", status=502)

    def login_failure(self):
        request = self.request
        user = getattr(self, "user", None)
        if request.GET.get("error"):
            said = request.GET.get("error_description") or request.GET["error"]
            reason = f"The identity provider did not sign you in: {said}."
        elif user is not None and not user.is_active:
            reason = "Your Slipway account is deactivated: ask a site administrator."
        else:
            reason = (
                "The sign-in could not be completed (it was started in another browser, or too long ago): start again."
            )
        return sso_refused(request, reason, status=403)

    def login_success(self):
        response = super().login_success()
        record(actor=Actor.from_request(self.request), action="user.sign_in", obj=self.user, reason=services.SSO)
        return response
