import json

from django import forms

from accounts.models import Team
from accounts.permissions import admin_teams
from deployments.models import Environment


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
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False, empty_label="Global (every team)")
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
        self.initial.setdefault("deployment_settings", json.dumps(self.instance.deployment_settings or {}, indent=1))
        self.initial["allowed_secret_refs"] = ", ".join(self.instance.allowed_secret_refs or [])

    def clean_allowed_secret_refs(self):
        return [name for name in self.cleaned_data["allowed_secret_refs"].replace(",", " ").split() if name]

    def clean_deployment_settings(self):
        text = self.cleaned_data["deployment_settings"].strip()
        try:
            return json.loads(text) if text else {}
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
