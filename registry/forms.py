import json

from django import forms

from accounts.models import Team
from registry.models import Framework, RegisteredModel
from registry.validation import load_json


class ModelForm(forms.ModelForm):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), empty_label=None)

    class Meta:
        model = RegisteredModel
        fields = ["team", "name", "task", "description", "auto_build"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "name": forms.TextInput(attrs={"placeholder": "fraud-detector", "autocomplete": "off"}),
            "task": forms.TextInput(attrs={"placeholder": "classification"}),
        }
        help_texts = {"name": "Lowercase letters, digits and '-', at most 63 characters. It cannot change later."}

    def __init__(self, *args, teams=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams if teams is not None else Team.objects.none()

    def validate_unique(self):
        # The service reports a duplicate name with a clearer message.
        pass


class ModelEditForm(forms.ModelForm):
    class Meta:
        model = RegisteredModel
        fields = ["task", "description", "auto_build"]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}


class JSONTextField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"})

    def __init__(self, *, empty, **kwargs):
        self.empty = empty
        super().__init__(required=False, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if not value or not value.strip():
            return self.empty
        try:
            return load_json(value)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None


class VersionUploadForm(forms.Form):
    framework = forms.ChoiceField(choices=Framework.choices)
    artifact = forms.FileField(required=False, help_text="One file, or a .tar.gz / .zip of a folder.")
    image_reference = forms.CharField(required=False, help_text="For a prebuilt image: registry/repository:tag")
    label = forms.CharField(required=False, max_length=128, help_text="Optional, e.g. 1.4.0 or a git tag.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    requirements = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "placeholder": "scikit-learn==1.5.2"}),
        help_text="pip requirement lines, one per line.",
    )
    metrics = JSONTextField(empty={}, help_text='JSON, e.g. {"accuracy": 0.94}')
    parameters = JSONTextField(empty={}, help_text='JSON, e.g. {"max_depth": 6}')
    signature = JSONTextField(
        empty={}, help_text='JSON: {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}], "outputs": [...]}'
    )
    source_url = forms.URLField(required=False, label="Source repository", assume_scheme="https")
    source_commit = forms.CharField(required=False, label="Commit")
    tags = forms.CharField(required=False, help_text="Comma separated.")
