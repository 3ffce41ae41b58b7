from django.http import JsonResponse
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from accounts.permissions import Actor
from config.api import created
from deployments.api.logs import LogActions
from deployments.api.lookups import version_named
from deployments.api.vulnerabilities import FINDINGS_PARAMETERS, build_vulnerabilities
from deployments.models import Build, BuildState
from deployments.osv.cyclonedx import bom_document
from deployments.selectors.builds import build_list
from deployments.services import builds


class BuildSerializer(serializers.ModelSerializer):
    version_number = serializers.IntegerField(source="version.number", read_only=True)
    model = serializers.CharField(source="version.model.name", read_only=True)
    team = serializers.CharField(source="version.model.team.slug", read_only=True)
    started_by = serializers.CharField(source="started_by.username", read_only=True, default=None)
    digest_reference = serializers.CharField(read_only=True)
    finished = serializers.BooleanField(source="is_finished", read_only=True)

    class Meta:
        model = Build
        fields = [
            "id",
            "version",
            "version_number",
            "model",
            "team",
            "state",
            "finished",
            "started_by",
            "created_at",
            "started_at",
            "finished_at",
            "steps",
            "image_reference",
            "image_digest",
            "digest_reference",
            "image_size",
            "failure_reason",
            "network_reason",
            "cancel_requested",
            "log_line_count",
        ]
        read_only_fields = fields


class BuildCreateSerializer(serializers.Serializer):
    version = serializers.IntegerField(help_text="The id of the model version to build.")


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
    serializer_class = BuildSerializer
    filterset_class = BuildFilter
    ordering_fields = ["created_at", "finished_at"]

    def get_queryset(self):
        return build_list(user=self.request.user).order_by("-created_at")

    @extend_schema(request=BuildCreateSerializer, responses={201: BuildSerializer})
    def create(self, request):
        incoming = BuildCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        version = version_named(request, incoming.validated_data["version"])
        build = builds.build_start(actor=Actor.from_request(request), version=version)
        return created(build, BuildSerializer(build).data)

    @extend_schema(request=None, responses=BuildSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        build = builds.build_cancel(actor=Actor.from_request(request), build=self.get_object())
        return Response(BuildSerializer(build).data)

    @extend_schema(parameters=FINDINGS_PARAMETERS, responses={200: dict})
    @action(detail=True, methods=["get"])
    def vulnerabilities(self, request, pk=None):
        """What the image's last scan found: JSON, or a CycloneDX VEX document with `format=vex`."""
        return build_vulnerabilities(request, self.get_object())

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def bom(self, request, pk=None):
        """What the image holds (Python and Debian packages, the serving runtime), as a CycloneDX 1.5 document."""
        build = self.get_object()
        document = bom_document(
            name=build.image_reference or f"build-{build.pk}", digest=build.image_digest, items=build.bill_of_materials
        )
        response = JsonResponse(document, json_dumps_params={"indent": 2})
        if request.query_params.get("download"):
            response["Content-Disposition"] = f'attachment; filename="build-{build.pk}-bom.cdx.json"'
        return response
