from rest_framework import mixins, serializers, viewsets
from rest_framework.exceptions import ValidationError

from accounts.models import Team
from accounts.permissions import Actor, visible_teams
from deployments.models import ContainerRegistry
from deployments.selectors.registries import registry_list
from deployments.services import registries


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


class RegistryViewSet(
    mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet
):
    """Container registries. Passwords are write-only and stored encrypted."""

    serializer_class = RegistrySerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return registry_list(user=self.request.user)

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        password = data.pop("password", None)
        team = data.get("team")
        if team is not None and not visible_teams(self.request.user).filter(pk=team.pk).exists():
            raise ValidationError({"team": f"Object with slug={team.slug} does not exist."})
        serializer.instance = registries.registry_save(
            actor=Actor.from_request(self.request), registry=ContainerRegistry(**data), password=password
        )

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        password = data.pop("password", None)
        if "team" in data and data["team"] != serializer.instance.team:
            raise ValidationError({"team": "A registry cannot move to another team; create a new one."})
        for field, value in data.items():
            setattr(serializer.instance, field, value)
        registries.registry_save(
            actor=Actor.from_request(self.request), registry=serializer.instance, password=password
        )

    def perform_destroy(self, instance):
        registries.registry_delete(actor=Actor.from_request(self.request), registry=instance)
