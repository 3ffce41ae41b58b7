from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.models import Team
from accounts.permissions import Actor, visible_teams
from deployments.models import Webhook
from deployments.selectors.notifications import webhook_list
from deployments.services import notifications


class WebhookSerializer(serializers.ModelSerializer):
    team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all())

    class Meta:
        model = Webhook
        fields = ["id", "team", "url", "events", "active", "created_at"]
        read_only_fields = ["created_at"]


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="The signing secret. It is shown this once only.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookViewSet(mixins.CreateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    """Webhooks told about promotions and deployments, signed with HMAC-SHA256 (header
    X-Slipway-Signature: t=<unix time>,v1=<hex of HMAC(secret, "<t>.<body>")>). Team admins manage them."""

    serializer_class = WebhookSerializer

    def get_queryset(self):
        return webhook_list(user=self.request.user)

    @extend_schema(request=WebhookSerializer, responses={201: WebhookCreatedSerializer})
    def create(self, request):
        incoming = WebhookSerializer(data=request.data)
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
        return Response(WebhookCreatedSerializer(webhook).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        notifications.webhook_delete(actor=Actor.from_request(self.request), webhook=instance)
