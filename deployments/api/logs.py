"""The log endpoints builds and rollouts share: `log?after=<seq>` (a window, to tail) and `log/download`."""

from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from deployments.logs import log_response

LOG_PARAMETERS = [
    OpenApiParameter("after", int, description="Return the lines after this sequence number (0: from the start)."),
    OpenApiParameter("limit", int, description="At most this many lines (default 1000, at most 5000)."),
    OpenApiParameter("before", int, description="Return the lines just before this sequence number."),
    OpenApiParameter("tail", int, description="Return the last N lines."),
    OpenApiParameter("search", str, description="Return the first lines after `after` containing this text."),
    OpenApiParameter("errors", bool, description="Return only the error lines after `after` (see `error`)."),
]


class LogLineSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    text = serializers.CharField()
    error = serializers.BooleanField(help_text="An error line: what the log viewer shows in red and jumps to.")


class LogWindowSerializer(serializers.Serializer):
    lines = LogLineSerializer(many=True)
    next_after = serializers.IntegerField(help_text="Pass as ?after= to get the lines that follow.")
    finished = serializers.BooleanField(help_text="True once the build ended and every line was returned.")
    state = serializers.CharField()


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

    @extend_schema(parameters=LOG_PARAMETERS, responses=LogWindowSerializer)
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
