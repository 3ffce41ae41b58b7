from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from accounts import selectors, services
from accounts.api import serializers
from accounts.models import ApiToken
from accounts.permissions import Actor, visible_teams


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Your own API tokens. DELETE revokes a token (it stays listed, marked revoked)."""

    serializer_class = serializers.TokenSerializer

    def get_queryset(self):
        return selectors.token_list(user=self.request.user)

    @extend_schema(request=serializers.TokenCreateSerializer, responses={201: serializers.TokenCreatedSerializer})
    def create(self, request):
        if isinstance(request.auth, ApiToken):
            # A leaked read-only token must not be able to mint a stronger one.
            raise PermissionDenied("API tokens are created from a signed-in session, not with another token.")
        incoming = serializers.TokenCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        token, secret = services.token_create(
            user=request.user, actor=Actor.from_request(request), **incoming.validated_data
        )
        token.token = secret
        return Response(serializers.TokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.token_revoke(token=instance, actor=Actor.from_request(self.request))


class TeamViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.TeamSerializer
    lookup_field = "slug"
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "created_at"]

    def get_queryset(self):
        return visible_teams(self.request.user).order_by("slug")
