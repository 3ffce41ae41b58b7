import json
from typing import Any

from django.urls import reverse
from rest_framework import serializers

from accounts.models import Team
from accounts.permissions import request_roles
from config.serializers import RefusesIgnoredFields
from registry.models import Framework, ModelVersion, RegisteredModel
from registry.validation import load_json, non_finite_error


class JSONValueField(serializers.JSONField):
    """Accepts a JSON value, or a JSON document as a string (multipart forms send strings)."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = load_json(data) if data.strip() else None
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError(f"Not valid JSON: {exc.msg} at character {exc.pos}.") from None
        if error := non_finite_error(data, self.field_name):  # DRF's own check says only "not valid JSON"
            raise serializers.ValidationError(error)
        return super().to_internal_value(data)


class RequirementsField(serializers.JSONField):
    """A list of lines, a JSON list as a string, or plain text with one requirement per line."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                parsed = load_json(data)
            except json.JSONDecodeError:
                return data
            return parsed if isinstance(parsed, list) else data
        return super().to_internal_value(data)


_DATETIME = serializers.DateTimeField()


class ModelSerializer(serializers.ModelSerializer):
    # Read only: a new model's team is written through ModelCreateSerializer.
    team: "serializers.SlugRelatedField[Team]" = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    version_count = serializers.IntegerField(read_only=True, default=None)
    latest_version = serializers.IntegerField(source="latest_number", read_only=True, default=None)
    url = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "id",
            "team",
            "name",
            "description",
            "task",
            "auto_build",
            "build_network_reason",
            "archived",
            "archived_at",
            "created_by",
            "created_at",
            "updated_at",
            "version_count",
            "latest_version",
            "url",
        ]
        read_only_fields = ["archived", "archived_at", "build_network_reason", "created_at", "updated_at"]

    def get_url(self, obj) -> str:
        return reverse("model-detail", args=[obj.team.slug, obj.name])

    def to_representation(self, instance: RegisteredModel) -> dict[str, Any]:
        """The fields above, read straight from the row: building DRF's fields from the model takes
        about a tenth of creating a model. `tests/registry/test_api_serializers.py` holds the two to
        the same output."""
        return {
            "id": instance.pk,
            "team": instance.team.slug,
            "name": instance.name,
            "description": instance.description,
            "task": instance.task,
            "auto_build": instance.auto_build,
            "build_network_reason": instance.build_network_reason,
            "archived": instance.archived,
            "archived_at": _DATETIME.to_representation(instance.archived_at) if instance.archived_at else None,
            "created_by": instance.created_by.username,
            "created_at": _DATETIME.to_representation(instance.created_at),
            "updated_at": _DATETIME.to_representation(instance.updated_at),
            "version_count": _count(getattr(instance, "version_count", None)),
            "latest_version": _count(getattr(instance, "latest_number", None)),
            "url": self.get_url(instance),
        }


def _field_of(model, name: str) -> serializers.Field:
    """The API field ModelSerializer would build for a model field (its rules, help text and schema),
    built once at import instead of at every request."""
    field_class, kwargs = serializers.ModelSerializer().build_standard_field(name, model._meta.get_field(name))
    return field_class(**kwargs)


class VisibleTeamField(serializers.SlugRelatedField):
    """A team named by its slug, among those the caller can see (`accounts.permissions`); a team the
    caller cannot see answers exactly like a team that does not exist. Found among the caller's
    memberships, which the permission check of the same request then reuses."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        request = self.context.get("request")
        team = request_roles(request).visible_team(data) if request is not None else None
        if team is None:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return team


class ModelCreateSerializer(serializers.Serializer):
    """What a script sends to register a model: the model's own fields, as ModelSerializer would make
    them, without making them again at each request (about a tenth of creating a model)."""

    team = VisibleTeamField(slug_field="slug", queryset=Team.objects.all())
    name = _field_of(RegisteredModel, "name")
    description = _field_of(RegisteredModel, "description")
    task = _field_of(RegisteredModel, "task")
    auto_build = _field_of(RegisteredModel, "auto_build")


def _count(value: int | None) -> int | None:
    return None if value is None else int(value)


class BuildNetworkSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=300, allow_blank=True, help_text="Why this model's builds need the network; empty takes it back."
    )


class ModelUpdateSerializer(RefusesIgnoredFields, serializers.ModelSerializer):
    class Meta:
        model = RegisteredModel
        fields = ["description", "task", "auto_build"]


# Any number no version id will reach; replaced by the id in a reversed URL.
_PK_PLACEHOLDER = 987654321987654321


class VersionSerializer(serializers.ModelSerializer):
    model: "serializers.PrimaryKeyRelatedField[RegisteredModel]" = serializers.PrimaryKeyRelatedField(read_only=True)
    model_name = serializers.CharField(source="model.name", read_only=True)
    team = serializers.CharField(source="model.team.slug", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    artifact_url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "model_name",
            "team",
            "number",
            "label",
            "framework",
            "description",
            "artifact_name",
            "artifact_sha256",
            "artifact_size",
            "artifact_info",
            "inspection",
            "inspection_note",
            "artifact_url",
            "image_reference",
            "requirements",
            "metrics",
            "parameters",
            "signature",
            "source_url",
            "source_commit",
            "tags",
            "created_by",
            "created_at",
        ]
        read_only_fields = fields

    def get_artifact_url(self, obj) -> str | None:
        if not obj.artifact:
            return None
        return self._artifact_url(obj.pk)

    def _artifact_url(self, pk: int) -> str:
        # Reversed once per serializer (a list has one child), then filled in for each version.
        template = getattr(self, "_artifact_url_template", None)
        if template is None:
            template = reverse("api:version-artifact", args=[_PK_PLACEHOLDER])
            self._artifact_url_template = template
        return template.replace(str(_PK_PLACEHOLDER), str(pk), 1)

    def to_representation(self, instance: ModelVersion) -> dict[str, Any]:
        """The fields above, read straight from the row: DRF's generic path builds and walks 25 field
        objects per version, most of a version list's time. `tests/registry/test_api_serializers.py`
        holds the two to the same output."""
        return {
            "id": instance.pk,
            "model": instance.model_id,
            "model_name": instance.model.name,
            "team": instance.model.team.slug,
            "number": instance.number,
            "label": instance.label,
            "framework": instance.framework,
            "description": instance.description,
            "artifact_name": instance.artifact_name,
            "artifact_sha256": instance.artifact_sha256,
            "artifact_size": instance.artifact_size,
            "artifact_info": instance.artifact_info,
            "inspection": instance.inspection,
            "inspection_note": instance.inspection_note,
            "artifact_url": self._artifact_url(instance.pk) if instance.artifact else None,
            "image_reference": instance.image_reference,
            "requirements": instance.requirements,
            "metrics": instance.metrics,
            "parameters": instance.parameters,
            "signature": instance.signature,
            "source_url": instance.source_url,
            "source_commit": instance.source_commit,
            "tags": instance.tags,
            "created_by": instance.created_by.username,
            "created_at": _DATETIME.to_representation(instance.created_at),
        }


class VersionCreateSerializer(serializers.Serializer):
    """What a script sends to register a version; the service does the real validation."""

    framework = serializers.ChoiceField(choices=Framework.choices)
    artifact = serializers.FileField(required=False, allow_empty_file=True)
    image_reference = serializers.CharField(required=False, allow_blank=True, default="")
    # A field named "label", as the API calls it, shadows the Field.label attribute the stubs know.
    label = serializers.CharField(required=False, allow_blank=True, default="", max_length=128)  # type: ignore[assignment]
    description = serializers.CharField(required=False, allow_blank=True, default="")
    requirements = RequirementsField(
        required=False,
        default=list,  # type: ignore[arg-type]  # the stubs expect a JSON object; this field holds a list
        help_text="pip requirement lines: a JSON list, or text with one per line",
    )
    metrics = JSONValueField(required=False, default=dict)
    parameters = JSONValueField(required=False, default=dict)
    signature = JSONValueField(required=False, default=dict)
    source_url = serializers.URLField(required=False, allow_blank=True, default="")
    source_commit = serializers.CharField(required=False, allow_blank=True, default="")
    tags = JSONValueField(required=False, default=list)  # type: ignore[arg-type]  # a list, as requirements
