from django.contrib.auth.models import Group
from rest_framework import serializers

from accounts.models import Team
from deployments.models import (
    Approval,
    Build,
    ContainerRegistry,
    Environment,
    FreezeWindow,
    PromotionRequest,
    Rollout,
    Webhook,
)


class BuildSerializer(serializers.ModelSerializer):
    version_number = serializers.IntegerField(source="version.number", read_only=True)
    model = serializers.CharField(source="version.model.name", read_only=True)
    team = serializers.CharField(source="version.model.team.slug", read_only=True)
    started_by = serializers.CharField(source="started_by.username", read_only=True, default=None)
    digest_reference = serializers.CharField(read_only=True)
    finished = serializers.BooleanField(source="is_finished", read_only=True)

    class Meta:
        model = Build
        fields = [
            "id",
            "version",
            "version_number",
            "model",
            "team",
            "state",
            "finished",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
            "steps",
            "image_reference",
            "image_digest",
            "digest_reference",
            "image_size",
            "failure_reason",
            "cancel_requested",
            "log_line_count",
        ]
        read_only_fields = fields


class BuildCreateSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The id of the model version to build.")


class LogLineSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    text = serializers.CharField()


class LogWindowSerializer(serializers.Serializer):
    lines = LogLineSerializer(many=True)
    next_after = serializers.IntegerField(help_text="Pass as ?after= to get the lines that follow.")
    finished = serializers.BooleanField(help_text="True once the build ended and every line was returned.")
    state = serializers.CharField()


class RegistrySerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), allow_null=True, required=False)
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        style={"input_type": "password"},
        help_text="Write-only: stored encrypted and never returned.",
    )
    has_password = serializers.SerializerMethodField()

    class Meta:
        model = ContainerRegistry
        fields = [
            "id",
            "name",
            "team",
            "url",
            "username",
            "password",
            "has_password",
            "insecure",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def get_has_password(self, obj) -> bool:
        return bool(obj.password)


class EnvironmentSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), allow_null=True, required=False)
    kube_token = serializers.CharField(
        write_only=True, required=False, allow_blank=True, help_text="Write-only: stored encrypted, never returned."
    )
    kubeconfig = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="Write-only: stored encrypted, never returned.",
    )
    has_credentials = serializers.BooleanField(read_only=True)
    approver_groups = serializers.SlugRelatedField(
        slug_field="name", many=True, required=False, queryset=Group.objects.all()
    )

    class Meta:
        model = Environment
        fields = [
            "id",
            "name",
            "team",
            "description",
            "position",
            "protected",
            "auto_rollback",
            "required_approvals",
            "approver_groups",
            "reject_requires_comment",
            "approval_expiry_hours",
            "requires_previous_stage",
            "target",
            "kube_api_url",
            "kube_ca_cert",
            "kube_token",
            "kubeconfig",
            "has_credentials",
            "namespace",
            "docker_url",
            "bind_address",
            "deployment_settings",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators = []


class RolloutSerializer(serializers.ModelSerializer):
    """A rollout; for one that came from a promotion, who asked for it and who approved it."""

    environment = serializers.CharField(source="environment.name", read_only=True)
    environment_id = serializers.IntegerField(read_only=True)
    model = serializers.CharField(source="model.name", read_only=True)
    team = serializers.CharField(source="model.team.slug", read_only=True)
    version_number = serializers.IntegerField(source="version.number", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, default=None)
    finished = serializers.BooleanField(source="is_finished", read_only=True)

    class Meta:
        model = Rollout
        fields = [
            "id",
            "environment",
            "environment_id",
            "team",
            "model",
            "version",
            "version_number",
            "build",
            "image",
            "kind",
            "replaces",
            "requested_by",
            "reason",
            "state",
            "finished",
            "created_at",
            "started_at",
            "finished_at",
            "ended_at",
            "progress",
            "endpoint",
            "failure_reason",
            "deployment_settings",
            "drift",
            "drift_detail",
            "drift_checked_at",
            "log_line_count",
            "promotion",
            "approved_by",
        ]
        read_only_fields = fields

    promotion = serializers.SerializerMethodField()
    approved_by = serializers.SerializerMethodField()

    def _promotion(self, obj):
        try:
            return obj.promotion
        except PromotionRequest.DoesNotExist:
            return None

    def get_promotion(self, obj) -> int | None:
        promotion = self._promotion(obj)
        return promotion.pk if promotion else None

    def get_approved_by(self, obj) -> list[str]:
        promotion = self._promotion(obj)
        if promotion is None:
            return []
        return [
            a.approver.username
            for a in promotion.approvals.all()
            if a.decision == "approve" and a.digest == promotion.digest
        ]


class RolloutDetailSerializer(RolloutSerializer):
    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "manifests"]
        read_only_fields = fields


class RolloutCreateSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The id of the model version to deploy (its latest successful build).")
    environment = serializers.IntegerField(help_text="The id of the environment.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class RollbackSerializer(serializers.Serializer):
    model = serializers.IntegerField(help_text="The id of the model to roll back in this environment.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = Approval
        fields = ["id", "approver", "decision", "digest", "comment", "token_name", "created_at"]
        read_only_fields = fields


class PromotionSerializer(serializers.ModelSerializer):
    environment = serializers.CharField(source="environment.name", read_only=True)
    environment_id = serializers.IntegerField(read_only=True)
    team = serializers.CharField(source="model.team.slug", read_only=True)
    model = serializers.CharField(source="model.name", read_only=True)
    version_number = serializers.IntegerField(source="version.number", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True)
    approvals = ApprovalSerializer(many=True, read_only=True)
    approvals_counted = serializers.SerializerMethodField()

    class Meta:
        model = PromotionRequest
        fields = [
            "id",
            "environment",
            "environment_id",
            "team",
            "model",
            "version",
            "version_number",
            "build",
            "image",
            "requested_by",
            "requested_with_token",
            "reason",
            "state",
            "required_approvals",
            "approvals_counted",
            "approvals",
            "created_at",
            "expires_at",
            "decided_at",
            "rollout",
            "break_glass_justification",
            "note",
        ]
        read_only_fields = fields

    def get_approvals_counted(self, obj) -> int:
        return sum(1 for a in obj.approvals.all() if a.decision == "approve" and a.digest == obj.digest)


class PromotionCreateSerializer(serializers.Serializer):
    version = serializers.IntegerField()
    environment = serializers.IntegerField()
    reason = serializers.CharField(max_length=2000)
    break_glass_justification = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Admins only: deploy through a freeze window."
    )


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class FreezeWindowSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = FreezeWindow
        fields = ["id", "environment", "starts_at", "ends_at", "reason", "created_by", "created_at"]
        read_only_fields = ["created_by", "created_at"]

    def validate(self, data):
        if data["ends_at"] <= data["starts_at"]:
            raise serializers.ValidationError({"ends_at": "The window must end after it starts."})
        return data


class WebhookSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = Webhook
        fields = ["id", "team", "url", "events", "active", "created_at"]
        read_only_fields = ["created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="The signing secret. It is shown this once only.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class ModelSettingsSerializer(serializers.Serializer):
    model = serializers.IntegerField(help_text="The id of the model whose settings in this environment change.")
    deployment_settings = serializers.JSONField(
        help_text='Overrides of the environment\'s settings, e.g. {"replicas": 4}. An empty object removes them.'
    )
