from django import forms

from accounts.models import Team
from accounts.permissions import admin_teams
from deployments.models import ContainerRegistry


class RegistryForm(forms.ModelForm):
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted; never shown again. Leave empty to keep the current one.",
    )
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False, empty_label="Global (every team)")

    class Meta:
        model = ContainerRegistry
        fields = ["name", "team", "url", "username", "insecure"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = admin_teams(user)
        if not user.is_superuser:
            self.fields["team"].required = True
            self.fields["team"].empty_label = None
        if self.instance.pk:
            self.fields["team"].disabled = True

    def validate_constraints(self, exclude=None):
        pass  # the service explains a duplicate better

    def validate_unique(self):
        pass
