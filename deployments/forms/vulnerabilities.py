from django import forms

from registry.models import RegisteredModel


class AcceptanceForm(forms.Form):
    model = forms.ModelChoiceField(queryset=RegisteredModel.objects.none())
    advisory_id = forms.CharField(
        max_length=200, label="Advisory or CVE", widget=forms.TextInput(attrs={"placeholder": "CVE-2026-1234"})
    )
    reason = forms.CharField(
        max_length=2000, widget=forms.TextInput(attrs={"placeholder": "why it does not matter here"})
    )
    expires_at = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), label="Until")

    def __init__(self, *args, models=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["model"].queryset = models if models is not None else RegisteredModel.objects.none()
