import re

from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import Actor
from deployments.api.lookups import environment_named, version_named
from deployments.models import Approval, PromotionRequest, PromotionState
from deployments.selectors.comparisons import shown_context
from deployments.selectors.promotions import inbox, promotion_list
from deployments.services import promotions


class ApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username", read_only=True)

    class Meta:
        model = Approval
        fields = ["id", "approver", "decision", "digest", "comment", "token_name", "context", "created_at"]
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
            "deployment_settings",
            "approvals_counted",
            "approvals",
            "created_at",
            "expires_at",
            "decided_at",
            "rollout",
            "break_glass_justification",
            "note",
            "decision_context",
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


_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    digest = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=600,
        help_text="The image digest you looked at (sha256:…, the request's `image` works too). "
        "A request rebuilt since then answers 409 and nothing is recorded.",
    )

    def validate_digest(self, value: str) -> str:
        # A typo is the caller's mistake (400), not a rebuild of the request (409).
        if value.strip() and not _DIGEST.match(value.strip().split("@")[-1]):
            raise serializers.ValidationError(
                "Give the image digest you looked at: sha256: and 64 hex digits, or the request's `image`."
            )
        return value


class ApproveSerializer(DecisionSerializer):
    digest = serializers.CharField(
        max_length=600,
        help_text="Required: the image digest you approve (sha256:…, or the request's `image`). "
        "If the request was rebuilt since you looked, the answer is 409 and nothing is recorded.",
    )


class DeploySerializer(serializers.Serializer):
    break_glass_justification = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=2000,
        help_text="During a freeze window only, and only for an admin of the environment's team, signed in.",
    )


class PromotionFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="model__team__slug")
    state = filters.MultipleChoiceFilter(choices=PromotionState.choices)

    class Meta:
        model = PromotionRequest
        fields = ["environment", "model", "version", "state", "team"]


class PromotionViewSet(viewsets.ReadOnlyModelViewSet):
    """Promotion requests into protected environments, their approvals, and what they change."""

    serializer_class = PromotionSerializer
    filterset_class = PromotionFilter
    ordering_fields = ["created_at", "expires_at"]

    def get_queryset(self):
        return promotion_list(user=self.request.user).prefetch_related("approvals__approver").order_by("-created_at")

    @extend_schema(request=PromotionCreateSerializer, responses={201: PromotionSerializer})
    def create(self, request):
        incoming = PromotionCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        version = version_named(request, data["version"])
        environment = environment_named(request, data["environment"])
        promotion = promotions.promotion_request(
            actor=Actor.from_request(request),
            version=version,
            environment=environment,
            reason=data["reason"],
            break_glass_justification=data["break_glass_justification"],
        )
        return Response(
            self.get_serializer(self.get_queryset().get(pk=promotion.pk)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(parameters=[OpenApiParameter("inbox", bool, description="Only the requests you may decide.")])
    def list(self, request, *args, **kwargs):
        if request.query_params.get("inbox") in ("1", "true"):
            page = self.paginate_queryset(inbox(Actor.from_request(request)))
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return super().list(request, *args, **kwargs)

    def _decided(self, promotion):
        return Response(self.get_serializer(self.get_queryset().get(pk=promotion.pk)).data)

    @extend_schema(request=ApproveSerializer, responses=PromotionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        promotion = self.get_object()
        incoming = ApproveSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._decided(
            promotions.promotion_approve(
                actor=Actor.from_request(request),
                promotion=promotion,
                digest=incoming.validated_data["digest"],
                comment=incoming.validated_data["comment"],
            )
        )

    @extend_schema(request=DecisionSerializer, responses=PromotionSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        incoming = DecisionSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._decided(
            promotions.promotion_reject(
                actor=Actor.from_request(request),
                promotion=self.get_object(),
                digest=incoming.validated_data["digest"],
                comment=incoming.validated_data["comment"],
            )
        )

    @extend_schema(request=None, responses=PromotionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._decided(
            promotions.promotion_cancel(actor=Actor.from_request(request), promotion=self.get_object())
        )

    @extend_schema(request=DeploySerializer, responses=PromotionSerializer)
    @action(detail=True, methods=["post"])
    def deploy(self, request, pk=None):
        """Deploy an approved request that was held back (a freeze window, another rollout)."""
        incoming = DeploySerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._decided(
            promotions.promotion_deploy(
                actor=Actor.from_request(request),
                promotion=self.get_object(),
                break_glass_justification=incoming.validated_data["break_glass_justification"],
            )
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def changes(self, request, pk=None):
        """What this promotion changes. While it is pending: against the environment's current release.
        Once decided: as the deciding approver was shown it (`as_of`: "approved" or "rejected"), or as
        it stood when requested ("requested"), never recomputed against what the deploy changed."""
        return Response(shown_context(self.get_object()))
