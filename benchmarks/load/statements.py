"""Statements of one request to each endpoint the load test uses, on the database DATABASE_URL names.

    python benchmarks/load/statements.py FIXTURE.json   # prints one JSON object: "METHOD endpoint" -> statements

run.py calls it with the seeded data (1x) and again after seed.py --grow has tripled it (more models,
versions per model, log lines per build, requests and approvals): an endpoint whose count differs
between the two issues queries per row. Each endpoint is asked twice and the second request counted,
as a user's second visit (caches warm). The writes are real: two uploads and two approvals per call
(of requests that carry exactly one approval, so both calls decide alike) and two sign-ins.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(fixture_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import connection
    from django.db.models import Count, Q
    from django.test import Client

    from deployments.models import PromotionRequest, PromotionState

    fixture = json.loads(fixture_path.read_text())
    model, build = fixture["models"][0], fixture["builds"][0]
    developer, approver = fixture["developers"][0], fixture["approvers"][0]
    # Pages as an approver: every page counts the approver's inbox in the navigation (a developer's is empty).
    browser = Client(SERVER_NAME="127.0.0.1")
    browser.force_login(get_user_model().objects.get(username=fixture["approvers"][1]["username"]))
    script = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {approver['token']}")
    uploader = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {developer['token']}")
    undecided = list(
        PromotionRequest.objects.filter(state=PromotionState.PENDING)
        .annotate(
            decisions=Count("approvals"),
            mine=Count("approvals", filter=Q(approvals__approver__username=approver["username"])),
        )
        .filter(decisions=1, mine=0)
        .order_by("-pk")[:2]
    )
    if len(undecided) < 2:
        raise SystemExit("fewer than two pending requests with one approval to approve")

    def get(client, url):
        return lambda _: client.get(url)

    def upload(_):
        artifact = SimpleUploadedFile("model.joblib", os.urandom(1024))
        return uploader.post(f"/api/v1/models/{model['id']}/versions/", {"framework": "sklearn", "artifact": artifact})

    def approve(n):
        promotion = undecided[n]
        return script.post(
            f"/api/v1/promotions/{promotion.pk}/approve/",
            {"comment": "counting", "digest": promotion.image.rpartition("@")[2]},
            content_type="application/json",
        )

    def sign_in(_):
        return Client(SERVER_NAME="127.0.0.1").post(
            "/login/", {"username": developer["username"], "password": developer["password"]}
        )

    promotion = undecided[0].pk
    endpoints = {
        "GET / (overview)": (get(browser, "/"), 200),
        "GET /models/[team]/[name]/": (get(browser, f"/models/{model['team']}/{model['name']}/"), 200),
        "GET /builds/[id]/": (get(browser, f"/builds/{build['id']}/"), 200),
        "GET /environments/[id]/": (get(browser, f"/environments/{fixture['environments'][2]}/"), 200),
        "GET /api/v1/builds/[id]/log/?after=": (get(script, f"/api/v1/builds/{build['id']}/log/?after=100"), 200),
        # 20 a page: more than one page at 1x too (the API counts the rows only when more pages follow).
        "GET /api/v1/promotions/?state=pending": (get(script, "/api/v1/promotions/?state=pending&page_size=20"), 200),
        "GET /api/v1/promotions/[id]/": (get(script, f"/api/v1/promotions/{promotion}/"), 200),
        "POST /api/v1/promotions/[id]/approve/": (approve, 200),
        "POST /api/v1/models/[id]/versions/ (upload)": (upload, 201),
        "POST sign-in: /login/ (post)": (sign_in, 302),
    }
    counts = {}
    for name, (request, expected) in endpoints.items():
        request(0)  # once to warm caches, as a user's second visit would
        statements: list[str] = []

        def capture(execute, sql, params, many, context, statements=statements):
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            answer = request(1)
        if answer.status_code != expected:
            raise SystemExit(f"{name} answered {answer.status_code}, not {expected}: {answer.content[:300]!r}")
        counts[name] = len(statements)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
