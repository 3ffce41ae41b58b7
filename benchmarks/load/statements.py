"""Statements of one request per endpoint the load test uses, on the database DATABASE_URL names.

    python benchmarks/load/statements.py FIXTURE.json   # prints one JSON object: endpoint -> statements

run.py calls it before and after the load: the data has grown in between (uploads, approvals, audit
rows), so an endpoint whose count changed grows its queries with its rows. Reads only: it signs in
through Django's test client, and changes nothing.
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
    from django.db import connection
    from django.test import Client

    fixture = json.loads(fixture_path.read_text())
    model, build = fixture["models"][0], fixture["builds"][0]
    browser = Client(SERVER_NAME="127.0.0.1")
    browser.force_login(get_user_model().objects.get(username=fixture["developers"][0]["username"]))
    script = Client(SERVER_NAME="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {fixture['approvers'][0]['token']}")
    endpoints = {
        "/ (overview)": (browser, "/"),
        "/models/[team]/[name]/": (browser, f"/models/{model['team']}/{model['name']}/"),
        "/builds/[id]/": (browser, f"/builds/{build['id']}/"),
        "/environments/[id]/": (browser, f"/environments/{fixture['environments'][2]}/"),
        "/api/v1/builds/[id]/log/?after=": (script, f"/api/v1/builds/{build['id']}/log/?after=100"),
        "/api/v1/promotions/?state=pending": (script, "/api/v1/promotions/?state=pending"),
        "/api/v1/models/[id]/versions/": (script, f"/api/v1/models/{model['id']}/versions/"),
    }
    counts = {}
    for name, (client, url) in endpoints.items():
        client.get(url)  # once to warm caches, as a user's second visit would
        statements: list[str] = []

        def capture(execute, sql, params, many, context, statements=statements):
            statements.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            answer = client.get(url)
        if answer.status_code != 200:
            raise SystemExit(f"{url} answered {answer.status_code}")
        counts[name] = len(statements)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
