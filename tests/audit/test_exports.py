"""CSV and JSON Lines exports: exactly the filtered events, the right columns, streamed, and recorded."""

import csv
import io
import json

import pytest

from audit.exports import COLUMNS
from audit.models import AuditEvent


def body(response) -> str:
    assert response.streaming, "exports must stream"
    return b"".join(response.streaming_content).decode()


def read_csv(response):
    return list(csv.DictReader(io.StringIO(body(response))))


def read_jsonl(response):
    return [json.loads(line) for line in body(response).splitlines()]


def test_csv_has_exactly_the_filtered_events_with_every_column(client, teammate, events):
    client.force_login(teammate)
    response = client.get("/audit/export.csv", {"action": "promotion."})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="slipway-audit-')
    rows = read_csv(response)
    assert list(rows[0]) == COLUMNS
    assert [row["id"] for row in rows] == [str(events["approve"].pk), str(events["refused"].pk)]
    approve = rows[0]
    assert approve["actor"] == "approver" and approve["token_name"] == "release-bot"
    assert (approve["action"], approve["outcome"], approve["team"]) == ("promotion.approve", "succeeded", "vision")
    assert json.loads(approve["before"]) == {"state": "pending"}
    assert json.loads(approve["after"]) == {"state": "approved"}
    assert approve["created_at"] == events["approve"].created_at.isoformat()
    assert (approve["ip_address"], approve["flagged"]) == ("", "false")  # another person's address is not shown
    assert rows[1]["ip_address"] == "10.0.0.5" and rows[1]["reason"] == "you never approve your own request"


def test_jsonl_has_exactly_the_filtered_events(client, site_admin, events):
    client.force_login(site_admin)
    response = client.get("/audit/export.jsonl", {"outcome": "refused"})
    assert response["Content-Type"].startswith("application/x-ndjson")
    records = read_jsonl(response)
    assert [record["id"] for record in records] == [events["other_refused"].pk, events["refused"].pk]
    assert list(records[0]) == COLUMNS
    assert records[1]["ip_address"] == "10.0.0.5" and records[1]["user_agent"] == "curl/8"


def test_an_export_shows_only_what_the_user_may_see(client, stranger, events):
    client.force_login(stranger)
    exported = {record["id"] for record in read_jsonl(client.get("/audit/export.jsonl"))}
    assert exported == {events["other"].pk, events["other_refused"].pk}


def test_an_export_is_itself_recorded_and_not_part_of_its_own_file(client, site_admin, events):
    client.force_login(site_admin)
    records = read_jsonl(client.get("/audit/export.jsonl", {"team": "vision"}, REMOTE_ADDR="192.0.2.4"))
    assert len(records) == 3
    export = AuditEvent.objects.get(action="audit.export")
    assert (export.actor, export.ip_address) == (site_admin, "192.0.2.4")
    assert export.after == {"format": "jsonl", "filters": {"team": "vision"}}
    assert export.pk not in {record["id"] for record in records}


def test_a_spreadsheet_formula_in_a_reason_is_neutralised_in_csv_only(client, teammate, team, make_event):
    make_event(actor=teammate, team=team, reason='=HYPERLINK("https://evil.example","click")')
    client.force_login(teammate)
    only = {"action": "model.update"}
    assert read_csv(client.get("/audit/export.csv", only))[0]["reason"].startswith("'=HYPERLINK")
    assert read_jsonl(client.get("/audit/export.jsonl", only))[0]["reason"].startswith("=HYPERLINK")


@pytest.mark.parametrize("path", ["/audit/export.csv", "/audit/export.jsonl"])
def test_an_unreadable_filter_refuses_the_export_rather_than_export_everything(client, site_admin, events, path):
    client.force_login(site_admin)
    response = client.get(path, {"until": "soon"})
    assert response.status_code == 400 and b"until" in response.content
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_a_large_export_streams_in_batches(client, site_admin, team, make_event):
    AuditEvent.objects.bulk_create(
        [AuditEvent(actor_username="platform", action="build.start", team=team, object_id=str(n)) for n in range(1200)]
    )
    client.force_login(site_admin)
    response = client.get("/audit/export.csv")
    chunks = list(response.streaming_content)
    assert len(chunks) >= 3  # header + 1200 rows in batches of 500, never one big string
    assert sum(chunk.count(b"\n") for chunk in chunks) == 1201
