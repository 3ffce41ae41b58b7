from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import Actor
from config.api import created
from deployments.api.logs import LogActions
from deployments.api.lookups import environment_named, version_named
from deployments.models import PromotionRequest, Rollout, RolloutState
from deployments.selectors.rollouts import rollout_list
from deployments.services import rollouts


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


class AttemptSerializer(serializers.ModelSerializer):
    """A rollout beside a release that failed or was rolled back."""

    version_number = serializers.IntegerField(source="version.number", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, default=None)

    class Meta:
        model = Rollout
        fields = [
            "id",
            "version",
            "version_number",
            "image",
            "kind",
            "state",
            "requested_by",
            "created_at",
            "finished_at",
            "ended_at",
            "failure_reason",
        ]
        read_only_fields = fields


class ReleaseSerializer(RolloutSerializer):
    """What ran, with the attempts beside it that failed or were rolled back (`context["attempts"]`:
    model id to rollouts, from deployments.selectors.rollouts.attempts_beside)."""

    attempts = serializers.SerializerMethodField()

    class Meta(RolloutSerializer.Meta):
        fields = [*RolloutSerializer.Meta.fields, "attempts"]
        read_only_fields = fields

    @extend_schema_field(AttemptSerializer(many=True))
    def get_attempts(self, obj) -> list:
        return list(AttemptSerializer(self.context.get("attempts", {}).get(obj.model_id, []), many=True).data)


BREAK_GLASS_HELP = "During a freeze window only, and only for an admin of the environment's team, signed in."


class RolloutCreateSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The id of the model version to deploy (its latest successful build).")
    environment = serializers.IntegerField(help_text="The id of the environment.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    break_glass_justification = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000, help_text=BREAK_GLASS_HELP
    )


class RollbackSerializer(serializers.Serializer):
    model = serializers.IntegerField(help_text="The id of the model to roll back in this environment.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    break_glass_justification = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=2000, help_text=BREAK_GLASS_HELP
    )


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
        return rollout_list(user=self.request.user).prefetch_related("promotion__approvals__approver")

    def get_serializer_class(self):
        return RolloutDetailSerializer if self.action == "retrieve" else RolloutSerializer

    @extend_schema(request=RolloutCreateSerializer, responses={201: RolloutSerializer, 202: RolloutSerializer})
    def create(self, request):
        incoming = RolloutCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        version = version_named(request, incoming.validated_data["version"])
        environment = environment_named(request, incoming.validated_data["environment"])
        rollout = rollouts.rollout_start(
            actor=Actor.from_request(request),
            version=version,
            environment=environment,
            reason=incoming.validated_data["reason"],
            break_glass_justification=incoming.validated_data["break_glass_justification"],
        )
        return created(rollout, RolloutSerializer(rollout).data)

    @extend_schema(request=None, responses=RolloutSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued rollout at once, or ask a running one to stop (it then rolls back what it changed)."""
        rollout = rollouts.rollout_cancel(actor=Actor.from_request(request), rollout=self.get_object())
        return Response(RolloutSerializer(rollout).data)
