from rest_framework import serializers

from accounts.models import Team
from deployments.models import Build, ContainerRegistry


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
            "id", "version", "version_number", "model", "team", "state", "finished", "started_by",
            "created_at", "started_at", "finished_at", "steps", "image_reference", "image_digest",
            "digest_reference", "image_size", "failure_reason", "cancel_requested", "log_line_count",
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
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), allow_null=True,
                                        required=False)
    password = serializers.CharField(write_only=True, required=False, allow_blank=True,
                                     style={"input_type": "password"},
                                     help_text="Write-only: stored encrypted and never returned.")
    has_password = serializers.SerializerMethodField()

    class Meta:
        model = ContainerRegistry
        fields = ["id", "name", "team", "url", "username", "password", "has_password", "insecure",
                  "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def get_has_password(self, obj) -> bool:
        return bool(obj.password)
