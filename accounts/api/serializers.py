from django.conf import settings
from rest_framework import serializers

from accounts.models import ApiToken, Team, TokenScope


class TokenSerializer(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)
    teams: "serializers.SlugRelatedField[Team]" = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True
    )
    environments = serializers.ListField(source="environment_names", child=serializers.CharField(), read_only=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "prefix",
            "scopes",
            "teams",
            "environments",
            "created_at",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "active",
        ]
        read_only_fields = fields


class TokenCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    expires_in_days = serializers.IntegerField(min_value=1, max_value=settings.API_TOKEN_MAX_DAYS, required=False)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=TokenScope.choices), required=False)
    teams = serializers.ListField(
        child=serializers.SlugField(),
        required=False,
        help_text="Limit the token to these teams (slugs); empty for all of yours.",
    )
    environments = serializers.ListField(
        child=serializers.SlugField(),
        required=False,
        help_text="Limit the token to these environments (names); empty for all.",
    )


class TokenCreatedSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret. It is shown this once only.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]


class TeamSerializer(serializers.ModelSerializer):
    class Meta:
        model = Team
        fields = ["id", "slug", "name", "description", "created_at"]
