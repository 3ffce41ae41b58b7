"""Vulnerabilities: a build's findings (JSON or CycloneDX VEX), accepted findings, the database's state."""

from django.http import JsonResponse
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import Actor, manages_any_team, restrict
from deployments.api.lookups import environment_named, model_named
from deployments.models import Build, Finding, FindingAcceptance, Severity
from deployments.osv.cyclonedx import component_ecosystem, purl, vex_document
from deployments.selectors.vulnerabilities import database_status, findings_filtered
from deployments.services import vulnerabilities
from deployments.tasks import refresh_vulnerability_db


class FindingSerializer(serializers.ModelSerializer):
    explanation = serializers.CharField(source="explain", read_only=True)

    class Meta:
        model = Finding
        fields = [
            "advisory_id",
            "aliases",
            "ecosystem",
            "package",
            "installed_version",
            "fixed_version",
            "severity",
            "summary",
            "url",
            "first_seen_at",
            "explanation",
        ]
        read_only_fields = fields


def _filtered(request, build: Build):
    params = request.query_params
    for name in ("severity", "min_severity"):
        if params.get(name) and params[name] not in Severity.values:
            raise ValidationError({name: f"Choose one of {', '.join(Severity.values)}."})
    return findings_filtered(
        build,
        severity=params.get("severity", ""),
        min_severity=params.get("min_severity", ""),
        ecosystem=params.get("ecosystem", ""),
        q=params.get("q", ""),
    )


FINDINGS_PARAMETERS = [
    OpenApiParameter("severity", str, description="Only this severity: " + ", ".join(Severity.values)),
    OpenApiParameter("min_severity", str, description="This severity or worse."),
    OpenApiParameter("ecosystem", str, description="PyPI or Debian."),
    OpenApiParameter("q", str, description="Part of a package name, an advisory id or a CVE."),
    OpenApiParameter("output", str, description="json (default) or vex (CycloneDX 1.5)."),
    OpenApiParameter("download", bool, description="Serve as an attachment."),
]


def build_vulnerabilities(request, build: Build):
    """GET /api/v1/builds/{id}/vulnerabilities/ (BuildViewSet's action)."""
    findings = list(_filtered(request, build))
    output = request.query_params.get("output", "json")  # not `format`: DRF keeps that for its renderers
    if output not in ("json", "vex"):
        raise ValidationError({"output": "Choose json or vex."})
    if output == "vex":
        purls: dict[tuple[str, str], str] = {}
        for item in build.bill_of_materials:
            ecosystem = component_ecosystem(item)
            name = item.get("source") or item["name"] if ecosystem.startswith("Debian") else item["name"]
            purls.setdefault((ecosystem, name if ecosystem.startswith("Debian") else name.lower()), purl(item))
        document = vex_document(
            name=build.image_reference or f"build-{build.pk}",
            digest=build.image_digest,
            findings=[FindingSerializer(f).data for f in findings],
            purls=purls,
        )
        filename = f"build-{build.pk}-vex.cdx.json"
    else:
        status_now = database_status()
        document = {
            "build": build.pk,
            "image": build.digest_reference,
            "scanned_at": build.scanned_at.isoformat() if build.scanned_at else None,
            "scan_seconds": build.scan_seconds,
            "counts": build.vulnerability_counts,
            "database": {
                "source": status_now.source,
                "refreshed_at": status_now.refreshed_at.isoformat() if status_now.refreshed_at else None,
                "stale": status_now.stale,
            },
            "findings": FindingSerializer(findings, many=True).data,
        }
        filename = f"build-{build.pk}-vulnerabilities.json"
    response = JsonResponse(document, json_dumps_params={"indent": 2})
    if request.query_params.get("download") in ("1", "true"):
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class AcceptanceSerializer(serializers.ModelSerializer):
    environment = serializers.IntegerField(source="environment_id", read_only=True)
    model = serializers.IntegerField(source="model_id", read_only=True)
    environment_name = serializers.CharField(source="environment.name", read_only=True)
    model_name = serializers.CharField(source="model.name", read_only=True)
    accepted_by = serializers.CharField(source="accepted_by.username", read_only=True)
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = FindingAcceptance
        fields = [
            "id",
            "environment",
            "environment_name",
            "model",
            "model_name",
            "advisory_id",
            "reason",
            "expires_at",
            "accepted_by",
            "created_at",
            "revoked_at",
            "active",
        ]
        read_only_fields = fields


class AcceptanceCreateSerializer(serializers.Serializer):
    environment = serializers.IntegerField()
    model = serializers.IntegerField()
    advisory_id = serializers.CharField(max_length=200, allow_blank=True)
    reason = serializers.CharField(max_length=5000, allow_blank=True)
    expires_at = serializers.DateTimeField()


class AcceptanceFilter(filters.FilterSet):
    class Meta:
        model = FindingAcceptance
        fields = ["environment", "model", "advisory_id"]


class FindingAcceptanceViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Findings an environment's admin accepted for a model, with a reason, until they expire."""

    serializer_class = AcceptanceSerializer
    filterset_class = AcceptanceFilter

    def get_queryset(self):
        return restrict(
            FindingAcceptance.objects.select_related("environment", "model", "accepted_by"), self.request.user
        ).order_by("-created_at")

    @extend_schema(request=AcceptanceCreateSerializer, responses={201: AcceptanceSerializer})
    def create(self, request):
        incoming = AcceptanceCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        acceptance = vulnerabilities.acceptance_create(
            actor=Actor.from_request(request),
            environment=environment_named(request, data["environment"]),
            model=model_named(request, data["model"]),
            advisory_id=data["advisory_id"],
            reason=data["reason"],
            expires_at=data["expires_at"],
        )
        return Response(AcceptanceSerializer(acceptance).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=AcceptanceSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        acceptance = vulnerabilities.acceptance_revoke(actor=Actor.from_request(request), acceptance=self.get_object())
        return Response(AcceptanceSerializer(acceptance).data)


class VulnerabilityDatabaseView(APIView):
    """GET: where the advisories come from and how old they are (admins). POST: refresh now (site admins)."""

    @extend_schema(responses={200: dict})
    def get(self, request):
        if not manages_any_team(request.user):
            raise PermissionDenied("Only admins see the vulnerability database's state.")
        state = database_status()
        return Response(
            {
                "configured": state.configured,
                "source": state.source,
                "refreshed_at": state.refreshed_at,
                "attempted_at": state.attempted_at,
                "age_seconds": int(state.age.total_seconds()) if state.age else None,
                "max_age_hours": state.max_age_hours,
                "stale": state.stale,
                "advisories": state.advisory_count,
                "skipped": state.skipped,
                "last_error": state.last_error,
            }
        )

    @extend_schema(request=None, responses={202: dict})
    def post(self, request):
        if not request.user.is_superuser or request.auth is not None:
            raise PermissionDenied("Only a site administrator, signed in, refreshes the vulnerability database.")
        refresh_vulnerability_db.delay()
        return Response({"queued": True}, status=status.HTTP_202_ACCEPTED)
