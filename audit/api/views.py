from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets

from audit import selectors
from audit.api.serializers import AuditEventSerializer

FILTER_PARAMETERS = [
    OpenApiParameter("actor", str, description="Username of the actor ('platform' for the platform itself)."),
    OpenApiParameter("action", str, description="Exact action, or a prefix ending with '.': 'promotion.'."),
    OpenApiParameter("outcome", str, enum=["succeeded", "refused", "failed"]),
    OpenApiParameter("object_type", str, description="App label and model, e.g. 'deployments.rollout'."),
    OpenApiParameter("object_id", str),
    OpenApiParameter("team", str, description="Team slug."),
    OpenApiParameter("environment", str, description="Environment name."),
    OpenApiParameter("flagged", bool),
    OpenApiParameter("since", str, description="ISO 8601 date or date and time (inclusive)."),
    OpenApiParameter("until", str, description="ISO 8601 date (that whole day) or date and time (inclusive)."),
    OpenApiParameter("q", str, description="Text in the object's name or the reason."),
]


@extend_schema_view(list=extend_schema(parameters=FILTER_PARAMETERS))
class AuditEventViewSet(viewsets.ReadOnlyModelViewSet):
    """The audit trail: read only, newest first, restricted to your teams' events and your own."""

    serializer_class = AuditEventSerializer
    filter_backends = []  # the selector applies the filters, the same ones as the audit page

    def get_queryset(self):
        if self.action == "list":
            return selectors.event_list(user=self.request.user, filters=self.request.query_params)
        return selectors.visible_events(user=self.request.user)
