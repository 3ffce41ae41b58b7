from django.http import JsonResponse, StreamingHttpResponse
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.permissions import Actor, restrict, visible_teams
from deployments import selectors
from deployments.api import serializers
from deployments.logs import log_response
from deployments.models import Build, BuildState, ContainerRegistry
from deployments.services import builds, registries
from registry.models import ModelVersion

LOG_PARAMETERS = [
    OpenApiParameter("after", int, description="Return the lines after this sequence number (0: from the start)."),
    OpenApiParameter("limit", int, description="At most this many lines (default 1000, at most 5000)."),
    OpenApiParameter("before", int, description="Return the lines just before this sequence number."),
    OpenApiParameter("tail", int, description="Return the last N lines."),
    OpenApiParameter("search", str, description="Return the first lines after `after` containing this text."),
]


def log_download(lines, filename: str) -> StreamingHttpResponse:
    """The whole log as text, streamed: a 100,000-line log never sits in memory."""
    texts = lines.order_by("seq").values_list("text", flat=True).iterator(chunk_size=5000)
    response = StreamingHttpResponse((f"{text}\n" for text in texts), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class LogActions:
    """`log?after=<seq>` (a window, to tail) and `log/download` (the whole text) for builds and rollouts."""

    final_states: list[str] = []
    log_name = ""

    @extend_schema(parameters=LOG_PARAMETERS, responses=serializers.LogWindowSerializer)
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        parent = self.get_object()
        try:
            data = log_response(parent, parent.log_lines.all(), request.query_params, finished_states=self.final_states)
        except ValueError as exc:
            raise ValidationError({"after": [str(exc)]}) from None
        return Response(data)

    @extend_schema(responses={(200, "text/plain"): str})
    @action(detail=True, methods=["get"], url_path="log/download")
    def log_text(self, request, pk=None):
        parent = self.get_object()
        return log_download(parent.log_lines, f"{self.log_name}-{parent.pk}.log")


class BuildFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="version__model__team__slug")
    model = filters.NumberFilter(field_name="version__model_id")
    state = filters.MultipleChoiceFilter(choices=BuildState.choices)

    class Meta:
        model = Build
        fields = ["version", "model", "team", "state"]


class BuildViewSet(LogActions, viewsets.ReadOnlyModelViewSet):
    """Image builds. POST starts one; `log?after=<seq>` tails its log."""

    final_states = BuildState.final()
    log_name = "build"
    serializer_class = serializers.BuildSerializer
    filterset_class = BuildFilter
    ordering_fields = ["created_at", "finished_at"]

    def get_queryset(self):
        return selectors.build_list(user=self.request.user).order_by("-created_at")

    @extend_schema(request=serializers.BuildCreateSerializer, responses={201: serializers.BuildSerializer})
    def create(self, request):
        incoming = serializers.BuildCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        version = (
            restrict(ModelVersion.objects.select_related("model__team"), request.user)
            .filter(pk=incoming.validated_data["version"])
            .first()
        )
        if version is None:
            raise ValidationError({"version": "No such version in your teams."})
        build = builds.build_start(actor=Actor.from_request(request), version=version)
        return Response(serializers.BuildSerializer(build).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=serializers.BuildSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        build = builds.build_cancel(actor=Actor.from_request(request), build=self.get_object())
        return Response(serializers.BuildSerializer(build).data)

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def bom(self, request, pk=None):
        """The packages installed in the image, as a CycloneDX 1.5 document."""
        build = self.get_object()
        components = [
            {
                "type": "library",
                "name": item["name"],
                "version": item["version"],
                "purl": f"pkg:pypi/{item['name'].lower()}@{item['version']}",
                "hashes": [{"alg": "SHA-256", "content": item["sha256"]}],
            }
            for item in build.bill_of_materials
        ]
        document = {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "version": 1,
            "metadata": {
                "component": {
                    "type": "container",
                    "name": build.image_reference or f"build-{build.pk}",
                    "version": build.image_digest,
                }
            },
            "components": components,
        }
        response = JsonResponse(document, json_dumps_params={"indent": 2})
        if request.query_params.get("download"):
            response["Content-Disposition"] = f'attachment; filename="build-{build.pk}-bom.cdx.json"'
        return response


class RegistryViewSet(
    mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet
):
    """Container registries. Passwords are write-only and stored encrypted."""

    serializer_class = serializers.RegistrySerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.registry_list(user=self.request.user)

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
