import json

from django.http import FileResponse
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.permissions import Action, Actor, require, restrict
from config.api import JSONParser, created
from config.viewsets import FiltersOnListOnly
from registry import selectors, services
from registry.api import serializers
from registry.models import ModelVersion, RegisteredModel


class ModelFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="team__slug")
    archived = filters.BooleanFilter()

    class Meta:
        model = RegisteredModel
        fields = ["team", "name", "task", "archived"]


class ModelViewSet(FiltersOnListOnly, mixins.CreateModelMixin, mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.ModelSerializer
    filterset_class = ModelFilter
    search_fields = ["name", "description", "task"]
    ordering_fields = ["name", "created_at", "updated_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_queryset(self):
        if self.action == "versions":  # the model's versions are the answer, not its counts
            return selectors.models_visible(user=self.request.user)
        return selectors.model_list(user=self.request.user, include_archived=True)

    def get_serializer_class(self):
        if self.action == "partial_update":
            return serializers.ModelUpdateSerializer
        if self.action == "create":
            return serializers.ModelCreateSerializer
        return super().get_serializer_class()

    @extend_schema(responses={201: serializers.ModelSerializer})
    def create(self, request, *args, **kwargs):
        incoming = self.get_serializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        model = services.model_create(actor=Actor.from_request(request), **incoming.validated_data)
        data = serializers.ModelSerializer(model).data
        return Response(data, status=201, headers={"Location": data["url"]})

    def perform_update(self, serializer):
        serializer.instance = services.model_update(
            actor=Actor.from_request(self.request), model=serializer.instance, **serializer.validated_data
        )

    def update(self, request, *args, **kwargs):
        super().update(request, *args, **kwargs)
        return Response(serializers.ModelSerializer(self.get_object()).data)

    @extend_schema(request=None, responses=serializers.ModelSerializer)
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        services.model_set_archived(actor=Actor.from_request(request), model=self.get_object(), archived=True)
        return Response(serializers.ModelSerializer(self.get_object()).data)

    @extend_schema(request=None, responses=serializers.ModelSerializer)
    @action(detail=True, methods=["post"])
    def unarchive(self, request, pk=None):
        services.model_set_archived(actor=Actor.from_request(request), model=self.get_object(), archived=False)
        return Response(serializers.ModelSerializer(self.get_object()).data)

    @extend_schema(request=serializers.BuildNetworkSerializer, responses=serializers.ModelSerializer)
    @action(detail=True, methods=["post"], url_path="build-network")
    def build_network(self, request, pk=None):
        """Let this model's builds use the network (site administrators only), with the reason builds show."""
        incoming = serializers.BuildNetworkSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        services.model_allow_build_network(
            actor=Actor.from_request(request), model=self.get_object(), reason=incoming.validated_data["reason"]
        )
        return Response(serializers.ModelSerializer(self.get_object()).data)

    @extend_schema(
        methods=["post"],
        request={"multipart/form-data": serializers.VersionCreateSerializer},
        responses={201: serializers.VersionSerializer},
    )
    @extend_schema(methods=["get"], responses=serializers.VersionSerializer(many=True))
    @action(detail=True, methods=["get", "post"], parser_classes=[MultiPartParser, FormParser, JSONParser])
    def versions(self, request, pk=None):
        model = self.get_object()
        if request.method == "GET":
            page = self.paginate_queryset(selectors.version_list(model=model))
            return self.get_paginated_response(serializers.VersionSerializer(page, many=True).data)
        actor = Actor.from_request(request)
        require(actor, Action.UPLOAD_VERSION, model.team)
        incoming = serializers.VersionCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        version = services.version_create(actor=actor, model=model, **incoming.validated_data)
        return created(version, serializers.VersionSerializer(version).data)


class VersionFilter(filters.FilterSet):
    team = filters.CharFilter(field_name="model__team__slug")
    model_name = filters.CharFilter(field_name="model__name")
    tag = filters.CharFilter(method="filter_tag")

    class Meta:
        model = ModelVersion
        fields = ["model", "team", "model_name", "framework", "label", "number"]

    def filter_tag(self, queryset, name, value):
        # Tags are a JSON list; matching the quoted tag works on PostgreSQL and on SQLite (`make run`).
        return queryset.filter(tags__icontains=json.dumps(value))


class VersionViewSet(FiltersOnListOnly, viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.VersionSerializer
    filterset_class = VersionFilter
    search_fields = ["label", "description", "model__name"]
    ordering_fields = ["number", "created_at"]

    def get_queryset(self):
        return restrict(ModelVersion.objects.select_related("model__team", "created_by"), self.request.user).order_by(
            "model_id", "-number"
        )

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def artifact(self, request, pk=None):
        version = self.get_object()
        if not version.artifact:
            return Response({"detail": "This version has no artifact (it is a prebuilt image)."}, status=404)
        response = FileResponse(version.artifact.open("rb"), as_attachment=True, filename=version.artifact_name)
        response["X-Checksum-SHA256"] = version.artifact_sha256
        return response
