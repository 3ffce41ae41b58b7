from typing import Any

from django.contrib.auth.models import Group
from django_filters import rest_framework as filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Role, Team
from accounts.permissions import Actor, restrict, visible_teams
from config.api import created
from deployments.api.lookups import model_named
from deployments.api.rollouts import ReleaseSerializer, RollbackSerializer, RolloutSerializer
from deployments.models import Environment, FreezeWindow
from deployments.selectors.environments import (
    effective_settings,
    environment_list,
    environments_of_team,
    grants_shown,
)
from deployments.selectors.rollouts import attempts_beside, moment, releases_at
from deployments.services import environments, rollouts
from registry.models import RegisteredModel

SECRET_FIELDS = environments.SECRET_FIELDS


@extend_schema_field(OpenApiTypes.STR)
class VisibleTeamField(serializers.SlugRelatedField):
    """A team by slug, among those the caller sees: another team's existence is not revealed."""

    def get_queryset(self):
        return visible_teams(self.context["request"].user)


class GrantSerializer(serializers.Serializer):
    team = VisibleTeamField(slug_field="slug")
    role = serializers.ChoiceField(choices=Role.choices)

    def validate(self, attrs):
        # A PATCH makes every field optional, down to each grant's; a grant still needs both.
        missing = {name: ["This field is required."] for name in self.fields if name not in attrs}
        if missing:
            raise serializers.ValidationError(missing)
        return attrs


class EnvironmentSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), allow_null=True, required=False)
    grants = GrantSerializer(
        many=True,
        required=False,
        help_text="Global environments: the teams that act here, each up to its role (none: no team's models "
        "deploy here). Set by site administrators; a list given replaces the one there. Read: the grants "
        "of the teams you see.",
    )
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
    docker_tls_ca = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False,
        help_text="Write-only PEM: the CA that signed a tcp:// engine's certificate. Stored encrypted, never returned.",
    )  # fmt: skip
    docker_tls_cert = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False,
        help_text="Write-only PEM: Slipway's client certificate for a tcp:// engine. Stored encrypted, never returned.",
    )  # fmt: skip
    docker_tls_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False,
        help_text="Write-only PEM: the client certificate's private key. Stored encrypted, never returned.",
    )  # fmt: skip
    docker_ssh_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False,
        help_text="Write-only: Slipway's private key for an ssh:// host (OpenSSH or PEM, unencrypted). "
        "Stored encrypted, never returned.",
    )  # fmt: skip
    has_credentials = serializers.BooleanField(read_only=True)
    has_docker_tls = serializers.BooleanField(read_only=True)
    has_docker_ssh_key = serializers.BooleanField(read_only=True)
    allowed_secret_refs = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Kubernetes Secrets models may read here (their secret_refs); set by the environment's admins.",
    )
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
            "block_severity",
            "four_eyes",
            "rollback_during_freeze",
            "target",
            "kube_api_url",
            "kube_ca_cert",
            "kube_token",
            "kubeconfig",
            "has_credentials",
            "namespace",
            "docker_url",
            "bind_address",
            "docker_tls_ca",
            "docker_tls_cert",
            "docker_tls_key",
            "has_docker_tls",
            "docker_ssh_key",
            "has_docker_ssh_key",
            "docker_ssh_host_key",
            "deployment_settings",
            "allowed_secret_refs",
            "grants",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]
        validators: list[Any] = []

    def to_representation(self, instance):
        data = super().to_representation(instance)
        context = self.context
        if "visible_team_ids" not in context:  # asked once per request, however many environments it lists
            context["visible_team_ids"] = set(visible_teams(context["request"].user).values_list("pk", flat=True))
        shown = grants_shown(instance, user=context["request"].user, visible_team_ids=context["visible_team_ids"])
        data["grants"] = [{"team": grant.team.slug, "role": grant.role} for grant in shown]
        return data


class ModelSettingsSerializer(serializers.Serializer):
    model = serializers.IntegerField(help_text="The id of the model whose settings in this environment change.")
    deployment_settings = serializers.JSONField(
        help_text='Overrides of the environment\'s settings, e.g. {"replicas": 4}. An empty object removes them.'
    )


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


class EnvironmentFilter(filters.FilterSet):
    team = filters.CharFilter(
        method="of_team", help_text="A team's slug: its own environments and the global ones granting it a role."
    )

    def of_team(self, queryset, name, value):
        return environments_of_team(queryset, user=self.request.user, team=value)


class EnvironmentViewSet(
    mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet
):
    """Environments in the promotion path. Credentials are write-only and stored encrypted."""

    serializer_class = EnvironmentSerializer
    filterset_class = EnvironmentFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    search_fields = ["name", "description"]

    def get_queryset(self):
        return environment_list(user=self.request.user).prefetch_related("grants__team").order_by("position", "name")

    def _save(self, environment, data):
        secrets = {field: data.pop(field) for field in SECRET_FIELDS if field in data}
        groups = data.pop("approver_groups", None)
        grants = data.pop("grants", None)
        for field, value in data.items():
            setattr(environment, field, value)
        return environments.environment_save(
            actor=Actor.from_request(self.request),
            environment=environment,
            secrets=secrets,
            approver_groups=groups,
            grants=None if grants is None else [(grant["team"], grant["role"]) for grant in grants],
        )

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        team = data.get("team")
        if team is not None and not visible_teams(self.request.user).filter(pk=team.pk).exists():
            raise ValidationError({"team": f"Object with slug={team.slug} does not exist."})
        serializer.instance = self._save(Environment(), data)

    def perform_update(self, serializer):
        data = dict(serializer.validated_data)
        if "team" in data and data["team"] != serializer.instance.team:
            raise ValidationError({"team": "An environment cannot move to another team."})
        serializer.instance = self._save(serializer.instance, data)

    def perform_destroy(self, instance):
        environments.environment_delete(actor=Actor.from_request(self.request), environment=instance)

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None):
        """Report the server version, whether the namespace exists and what the credentials may do."""
        report = environments.environment_check(actor=Actor.from_request(request), environment=self.get_object())
        return Response(report)

    @extend_schema(
        parameters=[OpenApiParameter("at", str, description="An ISO 8601 time; now when left out.")],
        responses=ReleaseSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def releases(self, request, pk=None):
        """What ran in this environment at a time (now by default), one release per model, with drift,
        and beside each the attempts that failed or were rolled back since the release before it."""
        at = request.query_params.get("at")
        when = moment(at) if at else None
        if at and when is None:
            raise ValidationError({"at": [f"'{at}' is not an ISO 8601 date and time, e.g. 2026-11-25T10:00:00Z."]})
        environment = self.get_object()
        releases = restrict(releases_at(environment, when), request.user)
        attempts = attempts_beside(environment, when, user=request.user)
        return Response(ReleaseSerializer(releases, many=True, context={"attempts": attempts}).data)

    @extend_schema(request=ModelSettingsSerializer, responses={200: dict})
    @action(detail=True, methods=["get", "post"], url_path="model-settings")
    def model_settings(self, request, pk=None):
        """Per-model overrides of this environment's deployment settings (GET: all of them)."""
        environment = self.get_object()
        if request.method == "GET":
            overrides = restrict(
                RegisteredModel.objects.filter(environment_settings__environment=environment), request.user
            ).values_list("pk", "name", "environment_settings__deployment_settings")
            return Response([{"model": pk, "name": name, "deployment_settings": data} for pk, name, data in overrides])
        incoming = ModelSettingsSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        model = model_named(request, incoming.validated_data["model"])
        override = environments.model_settings_save(
            actor=Actor.from_request(request),
            environment=environment,
            model=model,
            deployment_settings=incoming.validated_data["deployment_settings"],
        )
        return Response(
            {
                "model": model.pk,
                "name": model.name,
                "deployment_settings": override.deployment_settings,
                "effective": effective_settings(environment, model),
            }
        )

    @extend_schema(request=RollbackSerializer, responses={201: RolloutSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Redeploy the release that ran before the current one of a model."""
        environment = self.get_object()  # 404 before anything else for an environment out of sight
        incoming = RollbackSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        model = model_named(request, incoming.validated_data["model"])
        rollout = rollouts.rollout_rollback(
            actor=Actor.from_request(request),
            environment=environment,
            model=model,
            reason=incoming.validated_data["reason"],
            break_glass_justification=incoming.validated_data["break_glass_justification"],
        )
        return created(rollout, RolloutSerializer(rollout).data)


class FreezeWindowViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Deploy freeze windows. Admins of the environment create and delete them."""

    serializer_class = FreezeWindowSerializer
    filterset_fields = ["environment"]

    def get_queryset(self):
        return (
            FreezeWindow.objects.filter(environment__in=environment_list(user=self.request.user))
            .select_related("environment", "created_by")
            .order_by("-starts_at")
        )

    def perform_create(self, serializer):
        data = serializer.validated_data
        if not environment_list(user=self.request.user).filter(pk=data["environment"].pk).exists():
            raise ValidationError({"environment": ["No such environment."]})
        serializer.instance = environments.freeze_window_create(
            actor=Actor.from_request(self.request),
            environment=data["environment"],
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            reason=data["reason"],
        )

    def perform_destroy(self, instance):
        environments.freeze_window_delete(actor=Actor.from_request(self.request), window=instance)
