"""History cannot be changed: not by save(), not by a queryset, not by raw SQL, not in the admin."""

import pytest
from django.contrib.admin.sites import site
from django.db import DatabaseError, connection, transaction
from django.db.models.deletion import ProtectedError

from audit.models import AppendOnlyError, AuditEvent, AuditReview
from audit.services import record


@pytest.fixture
def event(teammate, model):
    return record(actor=teammate, action="model.update", obj=model, reason="original")


def reason_in_database(event):
    return AuditEvent.objects.values_list("reason", flat=True).get(pk=event.pk)


def test_saving_an_existing_event_raises(event):
    event.reason = "rewritten"
    with pytest.raises(AppendOnlyError, match="append-only"):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.save(update_fields=["reason"])
    assert reason_in_database(event) == "original"


def test_deleting_an_event_raises(event):
    with pytest.raises(AppendOnlyError):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_queryset_update_and_delete_raise(event):
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.update(reason="rewritten")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.bulk_update([event], ["reason"])
    assert reason_in_database(event) == "original"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_auditevent SET reason = 'x'",
        "DELETE FROM audit_auditevent",
        "UPDATE audit_auditreview SET note = 'x'",
        "DELETE FROM audit_auditreview",
    ],
)
def test_the_database_refuses_raw_update_and_delete(event, site_admin, sql):
    AuditReview.objects.create(event=event, reviewer=site_admin, reviewer_username="root", note="seen")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert reason_in_database(event) == "original"
    assert AuditReview.objects.get().note == "seen"


def test_the_database_refuses_truncate(event):
    # Test databases allow TRUNCATE (Django empties tables with it between transactional tests);
    # this session turns that off, as every production session is.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL slipway.audit_allow_truncate = 'off'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # else PostgreSQL refuses over the pending FK checks
        cursor.execute("TRUNCATE audit_auditevent CASCADE")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_user_or_team_named_by_history_cannot_be_deleted(event, teammate, team):
    with pytest.raises(ProtectedError), transaction.atomic():
        teammate.delete()
    with pytest.raises(ProtectedError), transaction.atomic():
        team.delete()
    assert reason_in_database(event) == "original"


def test_a_review_is_a_new_row_and_is_append_only_too(event, site_admin):
    review = AuditReview.objects.create(event=event, reviewer=site_admin, reviewer_username="root")
    review.note = "changed my mind"
    with pytest.raises(AppendOnlyError):
        review.save()
    with pytest.raises(AppendOnlyError):
        review.delete()


@pytest.mark.parametrize("audit_model", [AuditEvent, AuditReview])
def test_the_admin_allows_no_add_change_or_delete_even_for_a_site_admin(rf, site_admin, event, audit_model):
    request = rf.get("/admin/")
    request.user = site_admin
    model_admin = site._registry[audit_model]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request, event)
    assert not model_admin.has_delete_permission(request, event)
    assert model_admin.has_view_permission(request, event)


def test_the_admin_pages_show_events_but_refuse_to_change_them(client, site_admin, event):
    client.force_login(site_admin)
    listing = client.get("/admin/audit/auditevent/?outcome__exact=succeeded")
    assert listing.status_code == 200 and b"model.update" in listing.content
    assert client.get(f"/admin/audit/auditevent/{event.pk}/change/").status_code == 200  # read only view
    assert client.post(f"/admin/audit/auditevent/{event.pk}/change/", {"reason": "x"}).status_code == 403
    assert client.get("/admin/audit/auditevent/add/").status_code == 403
    assert client.post(f"/admin/audit/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert reason_in_database(event) == "original"
