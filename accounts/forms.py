from typing import Any

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from accounts import throttle
from accounts.models import Role, TokenScope


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs={"placeholder": "ci-pipeline"}))
    expires_in_days = forms.IntegerField(
        min_value=1,
        max_value=settings.API_TOKEN_MAX_DAYS,
        initial=settings.API_TOKEN_DEFAULT_DAYS,
        label="Expires in (days)",
    )
    scopes = forms.MultipleChoiceField(
        choices=TokenScope.choices,
        initial=[TokenScope.READ, TokenScope.DEPLOY],
        widget=forms.CheckboxSelectMultiple,
    )
    teams = forms.CharField(
        required=False, label="Only these teams", help_text="Team slugs, comma separated; empty for all of your teams."
    )
    environments = forms.CharField(
        required=False, label="Only these environments", help_text="Environment names, comma separated; empty for all."
    )

    def clean_teams(self):
        return [t.strip() for t in self.cleaned_data["teams"].split(",") if t.strip()]

    def clean_environments(self):
        return [e.strip() for e in self.cleaned_data["environments"].split(",") if e.strip()]


class MemberForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DEVELOPER)

    def clean_username(self):
        username = self.cleaned_data["username"]
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"No active user named '{username}'.")
        return user


class ThrottledSignIn:
    """For every password form: a locked account or address is told so, before any password check."""

    request: Any
    data: Any

    def refuse_if_throttled(self) -> None:
        username = self.data.get("username") if self.data else None
        reason = throttle.refusal(self.request, username)
        if reason:
            # Counted like any failure: spraying locked accounts from one address locks the address.
            throttle.record_failure(self.request, username)
            raise ValidationError(reason, code="throttled")


class ThrottledAdminSignInForm(ThrottledSignIn, AdminAuthenticationForm):
    def clean(self):
        self.refuse_if_throttled()
        return super().clean()


class SignInForm(ThrottledSignIn, AuthenticationForm):
    """The password form, which says plainly when passwords are turned off (SLIPWAY_LOCAL_LOGIN)."""

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "That username and password did not match. Try again.",
        "local_login_off": "Password sign-in is turned off here: use the button above.",
    }

    def clean(self):
        self.refuse_if_throttled()
        username = self.cleaned_data.get("username")
        if not settings.LOCAL_LOGIN and username and username not in settings.BREAK_GLASS_USERS:
            raise ValidationError(self.error_messages["local_login_off"], code="local_login_off")
        return super().clean()
