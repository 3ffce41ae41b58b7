from rest_framework import serializers

from audit.exports import COLUMNS
from audit.models import AuditEvent
from audit.selectors import sees_client


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_username", read_only=True)
    team = serializers.CharField(source="team.slug", read_only=True, default=None)
    reviewed = serializers.BooleanField(read_only=True, default=False)

    class Meta:
        model = AuditEvent
        # The columns of the CSV and JSON Lines exports, and the actor's id for scripts.
        fields = [*COLUMNS, "actor_id"]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if not sees_client(self.context["request"].user, instance):
            data["ip_address"], data["user_agent"] = None, ""
        return data
