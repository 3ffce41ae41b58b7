from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Membership, Role
from accounts.permissions import Actor, restrict, visible_teams
from deployments.api import serializers
from deployments.comparison import compare
from deployments.models import PromotionRequest, PromotionState, Webhook
from deployments.services import notifications, promotions
from deployments.services.environments import environments_for
from registry.models import ModelVersion


class PromotionFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="model__team__slug")
    state = filters.MultipleChoiceFilter(choices=PromotionState.choices)

    class Meta:
        model = PromotionRequest
        fields = ["environment", "model", "version", "state", "team"]


class PromotionViewSet(viewsets.ReadOnlyModelViewSet):
    """Promotion requests into protected environments, their approvals, and what they change."""

    serializer_class = serializers.PromotionSerializer
    filterset_class = PromotionFilter
    ordering_fields = ["created_at", "expires_at"]

    def get_queryset(self):
        return restrict(
            PromotionRequest.objects.select_related(
                "environment", "model__team", "version", "requested_by"
            ).prefetch_related("approvals__approver"),
            self.request.user,
        ).order_by("-created_at")

    @extend_schema(request=serializers.PromotionCreateSerializer, responses={201: serializers.PromotionSerializer})
    def create(self, request):
        incoming = serializers.PromotionCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        version = (
            restrict(ModelVersion.objects.select_related("model__team"), request.user)
            .filter(pk=data["version"])
            .first()
        )
        if version is None:
            raise ValidationError({"version": "No such version in your teams."})
        environment = environments_for(request.user).filter(pk=data["environment"]).first()
        if environment is None:
            raise ValidationError({"environment": "No such environment."})
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
            page = self.paginate_queryset(promotions.inbox(Actor.from_request(request)))
            return self.get_paginated_response(self.get_serializer(page, many=True).data)
        return super().list(request, *args, **kwargs)

    def _decided(self, promotion):
        return Response(self.get_serializer(self.get_queryset().get(pk=promotion.pk)).data)

    @extend_schema(request=serializers.DecisionSerializer, responses=serializers.PromotionSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        incoming = serializers.DecisionSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._decided(
            promotions.promotion_approve(
                actor=Actor.from_request(request),
                promotion=self.get_object(),
                comment=incoming.validated_data["comment"],
            )
        )

    @extend_schema(request=serializers.DecisionSerializer, responses=serializers.PromotionSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        incoming = serializers.DecisionSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        return self._decided(
            promotions.promotion_reject(
                actor=Actor.from_request(request),
                promotion=self.get_object(),
                comment=incoming.validated_data["comment"],
            )
        )

    @extend_schema(request=None, responses=serializers.PromotionSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        return self._decided(
            promotions.promotion_cancel(actor=Actor.from_request(request), promotion=self.get_object())
        )

    @extend_schema(request=None, responses=serializers.PromotionSerializer)
    @action(detail=True, methods=["post"])
    def deploy(self, request, pk=None):
        """Deploy an approved request that was held back (a freeze window, another rollout)."""
        return self._decided(
            promotions.promotion_deploy(actor=Actor.from_request(request), promotion=self.get_object())
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def changes(self, request, pk=None):
        """What this promotion changes against the environment's current release."""
        return Response(compare(self.get_object()))


class WebhookViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Webhooks told about promotions and deployments, signed with HMAC-SHA256 (header
    X-Slipway-Signature: t=<unix time>,v1=<hex of HMAC(secret, "<t>.<body>")>). Team admins manage them."""

    serializer_class = serializers.WebhookSerializer

    def get_queryset(self):
        admin_of = Membership.objects.filter(user=self.request.user, role=Role.ADMIN).values("team_id")
        webhooks = Webhook.objects.select_related("team").order_by("team__slug", "url")
        return webhooks if self.request.user.is_superuser else webhooks.filter(team_id__in=admin_of)

    @extend_schema(request=serializers.WebhookSerializer, responses={201: serializers.WebhookCreatedSerializer})
    def create(self, request):
        incoming = serializers.WebhookSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        if not visible_teams(request.user).filter(pk=data["team"].pk).exists():
            raise ValidationError({"team": [f"Object with slug={data['team'].slug} does not exist."]})
        webhook, secret = notifications.webhook_create(
            actor=Actor.from_request(request),
            team=data["team"],
            url=data["url"],
            events=data.get("events", []),
            active=data.get("active", True),
        )
        webhook.secret = secret
        return Response(serializers.WebhookCreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        from accounts.permissions import Action, require

        require(Actor.from_request(self.request), Action.MANAGE_TEAM, instance.team)
        instance.delete()
