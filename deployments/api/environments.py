from django.utils.dateparse import parse_datetime
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.permissions import Actor, restrict, visible_teams
from deployments.api import serializers
from deployments.api.builds import LogActions
from deployments.models import Environment, FreezeWindow, Rollout, RolloutState
from deployments.services import environments, rollouts
from registry.models import ModelVersion, RegisteredModel

SECRET_FIELDS = ("kube_token", "kubeconfig")


class EnvironmentViewSet(
    mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet
):
    """Environments in the promotion path. Credentials are write-only and stored encrypted."""

    serializer_class = serializers.EnvironmentSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    search_fields = ["name", "description"]

    def get_queryset(self):
        return environments.environments_for(self.request.user).order_by("position", "name")

    def _save(self, environment, data):
        secrets = {field: data.pop(field) for field in SECRET_FIELDS if field in data}
        groups = data.pop("approver_groups", None)
        for field, value in data.items():
            setattr(environment, field, value)
        return environments.environment_save(
            actor=Actor.from_request(self.request), environment=environment, secrets=secrets, approver_groups=groups
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
        environments.require_admin(Actor.from_request(self.request), instance)
        if instance.rollouts.exists():
            raise ValidationError({"environment": "It has a deployment history, which is kept; it cannot be deleted."})
        instance.delete()

    @extend_schema(request=None, responses={200: dict})
    @action(detail=True, methods=["post"], url_path="test-connection")
    def test_connection(self, request, pk=None):
        """Report the server version, whether the namespace exists and what the credentials may do."""
        report = environments.environment_check(actor=Actor.from_request(request), environment=self.get_object())
        return Response(report)

    @extend_schema(
        parameters=[OpenApiParameter("at", str, description="An ISO 8601 time; now when left out.")],
        responses=serializers.RolloutSerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def releases(self, request, pk=None):
        """What ran in this environment at a time (now by default), one release per model, with drift."""
        at = request.query_params.get("at")
        when = parse_datetime(at) if at else None
        if at and when is None:
            raise ValidationError({"at": [f"'{at}' is not an ISO 8601 date and time, e.g. 2026-11-25T10:00:00Z."]})
        releases = restrict(rollouts.releases_at(self.get_object(), when), request.user)
        return Response(serializers.RolloutSerializer(releases, many=True).data)

    @extend_schema(request=serializers.ModelSettingsSerializer, responses={200: dict})
    @action(detail=True, methods=["get", "post"], url_path="model-settings")
    def model_settings(self, request, pk=None):
        """Per-model overrides of this environment's deployment settings (GET: all of them)."""
        environment = self.get_object()
        if request.method == "GET":
            overrides = restrict(
                RegisteredModel.objects.filter(environment_settings__environment=environment), request.user
            ).values_list("pk", "name", "environment_settings__deployment_settings")
            return Response([{"model": pk, "name": name, "deployment_settings": data} for pk, name, data in overrides])
        incoming = serializers.ModelSettingsSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        model = (
            restrict(RegisteredModel.objects.select_related("team"), request.user)
            .filter(pk=incoming.validated_data["model"])
            .first()
        )
        if model is None:
            raise ValidationError({"model": ["No such model in your teams."]})
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
                "effective": environments.effective_settings(environment, model),
            }
        )

    @extend_schema(request=serializers.RollbackSerializer, responses={201: serializers.RolloutSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Redeploy the release that ran before the current one of a model."""
        incoming = serializers.RollbackSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        model = (
            restrict(RegisteredModel.objects.select_related("team"), request.user)
            .filter(pk=incoming.validated_data["model"])
            .first()
        )
        if model is None:
            raise ValidationError({"model": "No such model in your teams."})
        rollout = rollouts.rollout_rollback(
            actor=Actor.from_request(request),
            environment=self.get_object(),
            model=model,
            reason=incoming.validated_data["reason"],
        )
        return Response(serializers.RolloutSerializer(rollout).data, status=status.HTTP_201_CREATED)


class RolloutFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="model__team__slug")
    state = filters.MultipleChoiceFilter(choices=RolloutState.choices)

    class Meta:
        model = Rollout
        fields = ["environment", "model", "version", "state", "kind", "team"]


class RolloutViewSet(LogActions, viewsets.ReadOnlyModelViewSet):
    """Deployments of a version's image into an environment. POST starts one; `log?after=` tails it."""

    final_states = RolloutState.final()
    log_name = "rollout"
    filterset_class = RolloutFilter
    ordering_fields = ["created_at", "finished_at"]

    def get_queryset(self):
        return restrict(
            Rollout.objects.select_related("environment", "model__team", "version", "requested_by").prefetch_related(
                "promotion__approvals__approver"
            ),
            self.request.user,
        ).order_by("-created_at")

    def get_serializer_class(self):
        return serializers.RolloutDetailSerializer if self.action == "retrieve" else serializers.RolloutSerializer

    @extend_schema(request=serializers.RolloutCreateSerializer, responses={201: serializers.RolloutSerializer})
    def create(self, request):
        incoming = serializers.RolloutCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        version = (
            restrict(ModelVersion.objects.select_related("model__team"), request.user)
            .filter(pk=incoming.validated_data["version"])
            .first()
        )
        if version is None:
            raise ValidationError({"version": "No such version in your teams."})
        environment = (
            environments.environments_for(request.user).filter(pk=incoming.validated_data["environment"]).first()
        )
        if environment is None:
            raise ValidationError({"environment": "No such environment."})
        rollout = rollouts.rollout_start(
            actor=Actor.from_request(request),
            version=version,
            environment=environment,
            reason=incoming.validated_data["reason"],
        )
        return Response(serializers.RolloutSerializer(rollout).data, status=status.HTTP_201_CREATED)


class FreezeWindowViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Deploy freeze windows. Admins of the environment create and delete them."""

    serializer_class = serializers.FreezeWindowSerializer
    filterset_fields = ["environment"]

    def get_queryset(self):
        return (
            FreezeWindow.objects.filter(environment__in=environments.environments_for(self.request.user))
            .select_related("environment", "created_by")
            .order_by("-starts_at")
        )

    def perform_create(self, serializer):
        data = serializer.validated_data
        if not environments.environments_for(self.request.user).filter(pk=data["environment"].pk).exists():
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
