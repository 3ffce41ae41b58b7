from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from audit import exports, selectors, services
from audit.models import AuditEvent, Outcome

PAGE_SIZE = 50
# Offered in the action filter; any other dotted action can be typed.
COMMON_ACTIONS = [
    "model.",
    "version.",
    "build.",
    "rollout.",
    "promotion.",
    "environment.",
    "registry.",
    "token.",
    "membership.",
    "audit.",
    "promotion.request",
    "promotion.approve",
    "promotion.reject",
    "rollout.start",
    "rollout.rollback",
    "build.start",
    "build.cancel",
]


@dataclass(frozen=True)
class RequestActor:
    """Who asked, in the shape `services.record` reads (accounts' Actor, which audit may not import)."""

    user: object
    token: object = None
    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def of(cls, request) -> "RequestActor":
        return cls(
            user=request.user,
            token=getattr(request, "auth", None),
            ip_address=services.client_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )


def _filters(request) -> dict:
    return {key: request.GET.get(key, "").strip() for key in selectors.FILTERS}


def _query_string(request, *, without=("page",)) -> str:
    params = request.GET.copy()
    for key in without:
        params.pop(key, None)
    return params.urlencode()


@login_required
def event_list(request):
    filters = _filters(request)
    errors = {}
    try:
        events = selectors.event_list(user=request.user, filters=filters).prefetch_related("reviews")
    except ValidationError as error:
        events, errors = AuditEvent.objects.none(), error.message_dict
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    object_history = bool(filters["object_type"] and filters["object_id"])
    context = {
        "page": page,
        "filters": filters,
        "errors": errors,
        "active_filters": sum(1 for value in filters.values() if value),
        "outcomes": Outcome.choices,
        "teams": selectors.filter_teams(user=request.user),
        "common_actions": COMMON_ACTIONS,
        "query": _query_string(request),
        "object_history": object_history,
        "object_label": (
            page[0].object_repr if object_history and len(page) else f"{filters['object_type']} #{filters['object_id']}"
        ),
        "time_zone": timezone.get_current_timezone_name(),
        "may_review": selectors.may_review(request.user),
        "sees_everything": selectors.sees_everything(request.user),
    }
    return render(request, "audit/event_list.html", context)


def _export(request, *, extension: str, content_type: str, lines):
    filters = _filters(request)
    try:
        events = selectors.event_list(user=request.user, filters=filters)
    except ValidationError as error:
        return HttpResponse(
            "\n".join(f"{key}: {' '.join(msgs)}" for key, msgs in error.message_dict.items()),
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    # The export is a snapshot: events written while it streams (its own included) are left out.
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    events = events.filter(id__lte=last)
    services.record(
        actor=RequestActor.of(request),
        action="audit.export",
        after={"format": extension, "filters": {key: value for key, value in filters.items() if value}},
    )
    response = StreamingHttpResponse(lines(events, viewer=request.user), content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="slipway-audit-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
def export_csv(request):
    return _export(request, extension="csv", content_type="text/csv; charset=utf-8", lines=exports.csv_lines)


@login_required
def export_jsonl(request):
    return _export(
        request, extension="jsonl", content_type="application/x-ndjson; charset=utf-8", lines=exports.jsonl_lines
    )


@login_required
def event_review(request, pk: int):
    if request.method != "POST":
        # An action URL opened with GET goes back to the trail (as config.actions.post_only does for
        # the other apps' actions; audit imports none of them).
        messages.info(request, "That address performs an action; use its button on this page.")
        return redirect("audit:event-list")
    event = selectors.event_get(user=request.user, pk=pk)
    if not selectors.may_review(request.user):
        raise PermissionDenied("Reviewing audit events needs the 'Can add audit review' permission.")
    services.review_add(event=event, reviewer=request.user, note=request.POST.get("note", ""))
    messages.success(request, f"Event #{event.pk} marked as reviewed.")
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return redirect(back)
    return redirect("audit:event-list")
