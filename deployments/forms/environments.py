import json

from django import forms
from django.utils.html import format_html, format_html_join

from accounts.models import Role, Team
from accounts.permissions import Action, Actor, admin_teams, decide
from deployments.models import Environment
from registry.validation import load_json


class GrantsWidget(forms.Widget):
    """One role select per team; its value is {team id: role} ("" for none) for the selects posted."""

    def __init__(self, teams=(), attrs=None):
        super().__init__(attrs)
        self.teams = list(teams)

    def value_from_datadict(self, data, files, name):
        return {team.pk: data[f"{name}-{team.pk}"] for team in self.teams if f"{name}-{team.pk}" in data}

    def value_omitted_from_data(self, data, files, name):
        return not any(f"{name}-{team.pk}" in data for team in self.teams)

    def render(self, name, value, attrs=None, renderer=None):
        value = value or {}
        choices = [("", "No role"), *Role.choices]

        def row(team):
            field_id = f"id_{name}-{team.pk}"
            options = format_html_join(
                "",
                '<option value="{}"{}>{}</option>',
                ((role, " selected" if value.get(team.pk, "") == role else "", label) for role, label in choices),
            )
            return (field_id, team.name, team.slug, f"{name}-{team.pk}", field_id, options)

        rows = format_html_join(
            "",
            '<div class="grant-row"><label for="{}">{} <span class="muted small">{}</span></label>'
            '<select name="{}" id="{}">{}</select></div>',
            (row(team) for team in self.teams),
        )
        return format_html('<div class="grant-list" id="id_{}">{}</div>', name, rows)


class GrantsField(forms.Field):
    """The roles posted for teams, {team id: role} ("" for none): EnvironmentForm.clean_grants turns them
    into what the service takes."""

    widget = GrantsWidget

    def __init__(self, *, teams, **kwargs):
        self.teams = {team.pk: team for team in teams}
        super().__init__(widget=GrantsWidget(teams=self.teams.values()), **kwargs)

    def prepare_value(self, value):
        return value if isinstance(value, dict) else {}

    def to_python(self, value):
        for role in (value or {}).values():
            if role and role not in Role.values:
                raise forms.ValidationError(f"'{role}' is not a role.")
        return value or {}


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
    docker_tls_ca = forms.CharField(
        required=False,
        label="Docker TLS CA certificate",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text="tcp:// engines: the CA that signed the engine's certificate (PEM). Stored encrypted, never shown.",
    )
    docker_tls_cert = forms.CharField(
        required=False,
        label="Docker TLS client certificate",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text="Slipway's client certificate (PEM). Stored encrypted, never shown.",
    )
    docker_tls_key = forms.CharField(
        required=False,
        label="Docker TLS client key",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text="Its private key (PEM, unencrypted). Stored encrypted, never shown.",
    )
    docker_ssh_key = forms.CharField(
        required=False,
        label="SSH private key",
        widget=forms.Textarea(attrs={"rows": 3, "class": "mono"}),
        help_text="ssh:// hosts: Slipway's private key (OpenSSH or PEM, unencrypted); its public half goes in the "
        "user's authorized_keys there. Stored encrypted, never shown.",
    )
    deployment_settings = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "class": "mono"}),
        help_text='JSON, e.g. {"replicas": 2, "memory_limit": "2Gi", "autoscaling": {"min_replicas": 2, '
        '"max_replicas": 6, "target_cpu_percent": 70}}',
    )
    allowed_secret_refs = forms.CharField(
        required=False,
        label="Allowed Secrets",
        widget=forms.TextInput(attrs={"class": "mono", "placeholder": "model-api-keys, feature-store"}),
        help_text="Kubernetes Secrets in this namespace that models may read (secret_refs), comma separated. "
        "Only these; a shared namespace holds other teams' Secrets too.",
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, empty_label="Global (the teams granted a role below)"
    )
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
            "block_severity",
            "four_eyes",
            "rollback_during_freeze",
            "auto_rollback",
            "target",
            "namespace",
            "kube_api_url",
            "kube_ca_cert",
            "docker_url",
            "bind_address",
            "docker_ssh_host_key",
            "allowed_secret_refs",
        ]
        widgets = {
            "kube_ca_cert": forms.Textarea(attrs={"rows": 3, "class": "mono"}),
            "docker_ssh_host_key": forms.TextInput(attrs={"class": "mono", "placeholder": "ssh-ed25519 AAAA…"}),
        }
        labels = {"docker_ssh_host_key": "SSH host key"}

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = admin_teams(user)
        if not user.is_superuser:
            self.fields["team"].required, self.fields["team"].empty_label = True, None
        if self.instance.pk:
            self.fields["team"].disabled = True
        site_admin = decide(Actor(user=user), Action.MANAGE_TEAM, Environment())
        if not self.instance.pk and not site_admin:
            # The model's default is this machine's engine, which only site administrators may give.
            self.initial["docker_url"] = ""
        self.initial.setdefault("deployment_settings", json.dumps(self.instance.deployment_settings or {}, indent=1))
        self.initial["allowed_secret_refs"] = ", ".join(self.instance.allowed_secret_refs or [])
        # Roles on a global environment: for whoever the policy lets administer one (site administrators).
        if self.instance.team_id is None and site_admin:
            self.fields["grants"] = GrantsField(
                teams=Team.objects.order_by("slug"),
                required=False,
                label="Roles granted to teams",
                help_text="Global environments only. A team acts here up to the role granted (and never above "
                "its own role); a team without a role cannot deploy here.",
            )
            if self.instance.pk:
                self.initial["grants"] = dict(self.instance.grants.values_list("team_id", "role"))
            names = [name for name in self.fields if name != "grants"]
            self.order_fields([*names[: names.index("team") + 1], "grants"])  # beside the team it replaces

    def clean_grants(self):
        """[(team, role)] for the service: the roles posted, over the stored ones of the teams the form
        did not show (a team added since it was loaded keeps its role); None when nothing was posted,
        which leaves the grants as they are."""
        posted = self.cleaned_data["grants"]
        if not posted:
            return None
        roles = {**self.initial.get("grants", {}), **posted}
        teams = self.fields["grants"].teams
        return [(teams[team_id], role) for team_id, role in roles.items() if role]

    def clean_allowed_secret_refs(self):
        return [name for name in self.cleaned_data["allowed_secret_refs"].replace(",", " ").split() if name]

    def clean_deployment_settings(self):
        text = self.cleaned_data["deployment_settings"].strip()
        try:
            return load_json(text) if text else {}
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None

    def validate_constraints(self, exclude=None):
        pass

    def validate_unique(self):
        pass


class FreezeForm(forms.Form):
    starts_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="From")
    ends_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="Until")
    reason = forms.CharField(max_length=300, widget=forms.TextInput(attrs={"placeholder": "year-end close"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("starts_at") and cleaned.get("ends_at") and cleaned["ends_at"] <= cleaned["starts_at"]:
            self.add_error("ends_at", "The window must end after it starts.")
        return cleaned
