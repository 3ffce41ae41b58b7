from rest_framework import serializers

from audit.models import AuditEvent
from audit.selectors import sees_client


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_username", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True, default=None)
    reviewed = serializers.BooleanField(read_only=True, default=False)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "actor_id",
            "token_name",
            "action",
            "outcome",
            "object_type",
            "object_id",
            "object_repr",
            "team",
            "environment",
            "reason",
            "flagged",
            "reviewed",
            "before",
            "after",
            "ip_address",
            "user_agent",
            "request_id",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not sees_client(self.context["request"].user, instance):
            data["ip_address"], data["user_agent"] = None, ""
        return data
