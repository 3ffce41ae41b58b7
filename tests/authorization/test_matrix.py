"""The authorization matrix: every endpoint and page, every method it takes, for seven principals.

The list of endpoints is read from the URL configuration: a route without an entry here (or in PUBLIC,
with the reason it needs none) fails `test_every_route_has_an_entry`, so a new endpoint cannot ship
without someone deciding who may call it.

Principals, in the order of the expected codes:
  anonymous; viewer, developer, approver and admin of team "vision" (which owns every object below);
  dual, a viewer in "vision" and an admin in "other"; token, a read-only API token of a user who
  administers both teams, limited to team "other" (so "vision" is out of its sight).

Each case builds the world once and runs the seven requests each in a savepoint that is rolled back,
so every principal meets the same world and the whole matrix takes seconds, not minutes.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, Role
from accounts.services import token_create
from audit.models import AuditEvent
from deployments.models import FindingAcceptance, FreezeWindow, PromotionRequest, Rollout, RolloutState, Webhook
from tests.conftest import member
from tests.support.factories import (
    EnvironmentFactory,
    MembershipFactory,
    ModelFactory,
    RegistryFactory,
    VersionFactory,
    succeeded_build,
)

PRINCIPALS = ("anonymous", "viewer", "developer", "approver", "admin", "dual", "token")
DIGEST = "sha256:" + "a" * 64  # the image succeeded_build() pushes

# Routes that need no entry, and why.
PUBLIC = {
    "healthz": "liveness probe, no data",
    "readyz": "readiness probe, no data",
    "metrics": "guarded by its own token and networks (tests/platform/test_metrics.py)",
    "login": "signing in",
    "logout": "signing out",
    "sso-start": "the OpenID Connect redirect",
    "sso-callback": "the OpenID Connect callback",
    "api-schema": "the public OpenAPI schema",
    "api-docs": "the public API documentation",
    "favicon": "a static file",
}
IGNORED_PREFIXES = ("admin/",)  # Django's admin: site administrators only, its own permission system


@dataclass(frozen=True)
class Case:
    url: str
    expected: str  # seven status codes, in the order of PRINCIPALS
    body: Any = None


def upload():
    return {"framework": "sklearn", "artifact": SimpleUploadedFile("m.joblib", b"model bytes")}


# A team's admin points a new environment elsewhere than this machine's engine (the site's).
QA_CLUSTER = {
    "name": "qa",
    "team": "vision",
    "target": "kubernetes",
    "namespace": "qa",
    "kube_api_url": "https://k8s.example.net",
    "kube_token": "t",
}
FREEZE = {"environment": "{dev}", "starts_at": "2030-01-01T00:00:00Z", "ends_at": "2030-01-02T00:00:00Z", "reason": "r"}

# (url name, method) -> case. Codes: anonymous, viewer, developer, approver, admin, dual, token.
API: dict[tuple[str, str], Case] = {
    ("api:api-root", "get"): Case("/api/v1/", "401 200 200 200 200 200 200"),
    ("api:can-i", "get"): Case(
        "/api/v1/can-i/?action=deploy&object=version:{version}&environment={dev}", "401 200 200 200 200 200 404"
    ),
    ("api:team-list", "get"): Case("/api/v1/teams/", "401 200 200 200 200 200 200"),
    ("api:team-detail", "get"): Case("/api/v1/teams/vision/", "401 200 200 200 200 200 404"),
    ("api:token-list", "get"): Case("/api/v1/tokens/", "401 200 200 200 200 200 200"),
    ("api:token-list", "post"): Case("/api/v1/tokens/", "401 201 201 201 201 201 403", {"name": "new"}),
    ("api:token-detail", "get"): Case("/api/v1/tokens/{developer_token}/", "401 404 200 404 404 404 404"),
    ("api:token-detail", "delete"): Case("/api/v1/tokens/{developer_token}/", "401 404 204 404 404 404 404"),
    ("api:model-list", "get"): Case("/api/v1/models/", "401 200 200 200 200 200 200"),
    ("api:model-list", "post"): Case(
        "/api/v1/models/", "401 403 201 201 201 403 400", {"team": "vision", "name": "new-model"}
    ),
    ("api:model-detail", "get"): Case("/api/v1/models/{model}/", "401 200 200 200 200 200 404"),
    ("api:model-detail", "put"): Case("/api/v1/models/{model}/", "401 405 405 405 405 405 405", {"task": "x"}),
    ("api:model-detail", "patch"): Case("/api/v1/models/{model}/", "401 403 200 200 200 403 404", {"task": "x"}),
    ("api:model-archive", "post"): Case("/api/v1/models/{model}/archive/", "401 403 403 403 200 403 404"),
    ("api:model-unarchive", "post"): Case("/api/v1/models/{model}/unarchive/", "401 403 403 403 200 403 404"),
    ("api:model-build-network", "post"): Case(
        "/api/v1/models/{model}/build-network/", "401 403 403 403 403 403 404", {"reason": "pip mirror"}
    ),
    ("api:model-versions", "get"): Case("/api/v1/models/{model}/versions/", "401 200 200 200 200 200 404"),
    ("api:model-versions", "post"): Case("/api/v1/models/{model}/versions/", "401 403 201 201 201 403 404", upload),
    ("api:version-list", "get"): Case("/api/v1/versions/", "401 200 200 200 200 200 200"),
    ("api:version-detail", "get"): Case("/api/v1/versions/{version}/", "401 200 200 200 200 200 404"),
    ("api:version-artifact", "get"): Case("/api/v1/versions/{version}/artifact/", "401 200 200 200 200 200 404"),
    ("api:build-list", "get"): Case("/api/v1/builds/", "401 200 200 200 200 200 200"),
    ("api:build-list", "post"): Case("/api/v1/builds/", "401 403 201 201 201 403 400", {"version": "{version}"}),
    ("api:build-detail", "get"): Case("/api/v1/builds/{build}/", "401 200 200 200 200 200 404"),
    ("api:build-bom", "get"): Case("/api/v1/builds/{build}/bom/", "401 200 200 200 200 200 404"),
    ("api:build-cancel", "post"): Case("/api/v1/builds/{build}/cancel/", "401 403 400 400 400 403 404"),
    ("api:build-log", "get"): Case("/api/v1/builds/{build}/log/", "401 200 200 200 200 200 404"),
    ("api:build-log-text", "get"): Case("/api/v1/builds/{build}/log/download/", "401 200 200 200 200 200 404"),
    ("api:registry-list", "get"): Case("/api/v1/registries/", "401 200 200 200 200 200 200"),
    ("api:registry-list", "post"): Case(
        "/api/v1/registries/", "401 403 403 403 400 403 400", {"name": "r2", "url": "127.0.0.1:5998", "team": "vision"}
    ),
    ("api:registry-detail", "get"): Case("/api/v1/registries/{registry}/", "401 404 404 404 200 404 404"),
    ("api:registry-detail", "put"): Case("/api/v1/registries/{registry}/", "401 405 405 405 405 405 405", {}),
    ("api:registry-detail", "patch"): Case(
        "/api/v1/registries/{registry}/", "401 404 404 404 200 404 404", {"name": "renamed"}
    ),
    ("api:registry-detail", "delete"): Case("/api/v1/registries/{registry}/", "401 404 404 404 204 404 404"),
    ("api:environment-list", "get"): Case("/api/v1/environments/", "401 200 200 200 200 200 200"),
    ("api:environment-list", "post"): Case("/api/v1/environments/", "401 403 403 403 201 403 400", QA_CLUSTER),
    ("api:environment-detail", "get"): Case("/api/v1/environments/{dev}/", "401 200 200 200 200 200 404"),
    ("api:environment-detail", "put"): Case("/api/v1/environments/{dev}/", "401 405 405 405 405 405 405", {}),
    ("api:environment-detail", "patch"): Case(
        "/api/v1/environments/{dev}/", "401 403 403 403 200 403 404", {"description": "the first stage"}
    ),
    ("api:environment-detail", "delete"): Case("/api/v1/environments/{dev}/", "401 403 403 403 400 403 404"),
    ("api:environment-model-settings", "get"): Case(
        "/api/v1/environments/{dev}/model-settings/", "401 200 200 200 200 200 404"
    ),
    ("api:environment-model-settings", "post"): Case(
        "/api/v1/environments/{dev}/model-settings/",
        "401 403 403 403 200 403 404",
        {"model": "{model}", "deployment_settings": {"replicas": 2}},
    ),
    ("api:environment-releases", "get"): Case("/api/v1/environments/{dev}/releases/", "401 200 200 200 200 200 404"),
    ("api:environment-rollback", "post"): Case(
        "/api/v1/environments/{dev}/rollback/", "401 403 400 400 400 403 404", {"model": "{model}"}
    ),
    ("api:environment-test-connection", "post"): Case(
        "/api/v1/environments/{dev}/test-connection/", "401 403 403 403 200 403 404"
    ),
    ("api:rollout-list", "get"): Case("/api/v1/rollouts/", "401 200 200 200 200 200 200"),
    ("api:rollout-list", "post"): Case(
        "/api/v1/rollouts/", "401 403 201 201 201 403 400", {"version": "{version}", "environment": "{dev}"}
    ),
    ("api:rollout-detail", "get"): Case("/api/v1/rollouts/{rollout}/", "401 200 200 200 200 200 404"),
    ("api:rollout-cancel", "post"): Case("/api/v1/rollouts/{rollout}/cancel/", "401 403 400 400 400 403 404"),
    ("api:rollout-log", "get"): Case("/api/v1/rollouts/{rollout}/log/", "401 200 200 200 200 200 404"),
    ("api:rollout-log-text", "get"): Case("/api/v1/rollouts/{rollout}/log/download/", "401 200 200 200 200 200 404"),
    ("api:promotion-list", "get"): Case("/api/v1/promotions/", "401 200 200 200 200 200 200"),
    ("api:promotion-list", "post"): Case(
        "/api/v1/promotions/",
        "401 403 400 400 400 403 400",
        {"version": "{version}", "environment": "{prod}", "reason": "ship"},
    ),
    ("api:promotion-detail", "get"): Case("/api/v1/promotions/{promotion}/", "401 200 200 200 200 200 404"),
    ("api:promotion-approve", "post"): Case(
        "/api/v1/promotions/{promotion}/approve/", "401 403 403 200 200 403 404", {"digest": DIGEST}
    ),
    ("api:promotion-reject", "post"): Case(
        "/api/v1/promotions/{promotion}/reject/", "401 403 403 200 200 403 404", {"comment": "no", "digest": DIGEST}
    ),
    ("api:promotion-cancel", "post"): Case("/api/v1/promotions/{promotion}/cancel/", "401 403 200 403 200 403 404"),
    ("api:promotion-deploy", "post"): Case("/api/v1/promotions/{promotion}/deploy/", "401 403 400 400 400 403 404"),
    ("api:promotion-changes", "get"): Case("/api/v1/promotions/{promotion}/changes/", "401 200 200 200 200 200 404"),
    ("api:freeze-window-list", "get"): Case("/api/v1/freeze-windows/", "401 200 200 200 200 200 200"),
    ("api:freeze-window-list", "post"): Case("/api/v1/freeze-windows/", "401 403 403 403 201 403 400", FREEZE),
    ("api:freeze-window-detail", "get"): Case("/api/v1/freeze-windows/{freeze}/", "401 200 200 200 200 200 404"),
    ("api:freeze-window-detail", "delete"): Case("/api/v1/freeze-windows/{freeze}/", "401 403 403 403 204 403 404"),
    ("api:webhook-list", "get"): Case("/api/v1/webhooks/", "401 200 200 200 200 200 200"),
    ("api:webhook-list", "post"): Case(
        "/api/v1/webhooks/", "401 403 403 403 201 403 400", {"team": "vision", "url": "https://hooks.example.com/in"}
    ),
    ("api:webhook-detail", "get"): Case("/api/v1/webhooks/{webhook}/", "401 404 404 404 200 404 404"),
    ("api:webhook-detail", "delete"): Case("/api/v1/webhooks/{webhook}/", "401 404 404 404 204 404 404"),
    ("api:vulnerability-database", "get"): Case("/api/v1/vulnerability-database/", "401 403 403 403 200 200 403"),
    ("api:vulnerability-database", "post"): Case("/api/v1/vulnerability-database/", "401 403 403 403 403 403 403"),
    ("api:build-vulnerabilities", "get"): Case(
        "/api/v1/builds/{build}/vulnerabilities/", "401 200 200 200 200 200 404"
    ),
    ("api:finding-acceptance-list", "get"): Case("/api/v1/finding-acceptances/", "401 200 200 200 200 200 200"),
    ("api:finding-acceptance-list", "post"): Case(
        "/api/v1/finding-acceptances/",
        "401 403 403 403 201 403 400",
        {
            "environment": "{dev}",
            "model": "{model}",
            "advisory_id": "CVE-2026-1",
            "reason": "r",
            "expires_at": "{soon}",
        },
    ),
    ("api:finding-acceptance-detail", "get"): Case(
        "/api/v1/finding-acceptances/{acceptance}/", "401 200 200 200 200 200 404"
    ),
    ("api:finding-acceptance-revoke", "post"): Case(
        "/api/v1/finding-acceptances/{acceptance}/revoke/", "401 403 403 403 200 403 404"
    ),
    ("api:audit-event-list", "get"): Case("/api/v1/audit/", "401 200 200 200 200 200 200"),
    ("api:audit-event-detail", "get"): Case("/api/v1/audit/{event}/", "401 200 200 200 200 200 404"),
}

# Pages: anonymous visitors (and API tokens, which do not sign in to pages) go to the sign-in page.
PAGES: dict[tuple[str, str], Case] = {
    ("home", "get"): Case("/", "302 200 200 200 200 200 302"),
    ("model-detail", "get"): Case("/models/vision/iris/", "302 200 200 200 200 200 302"),
    ("version-compare", "get"): Case("/models/vision/iris/compare/", "302 200 200 200 200 200 302"),
    ("version-detail", "get"): Case("/models/vision/iris/v1/", "302 200 200 200 200 200 302"),
    ("accounts:tokens", "get"): Case("/settings/tokens/", "302 200 200 200 200 200 302"),
    ("accounts:token-revoke", "post"): Case(
        "/settings/tokens/{developer_token}/revoke/", "302 404 302 404 404 404 302"
    ),
    ("accounts:team-list", "get"): Case("/teams/", "302 200 200 200 200 200 302"),
    ("accounts:team-detail", "get"): Case("/teams/vision/", "302 200 200 200 200 200 302"),
    ("accounts:team-detail", "post"): Case(
        "/teams/vision/", "302 403 403 403 302 403 302", {"username": "viewer", "role": "developer"}
    ),
    ("accounts:member-remove", "post"): Case("/teams/vision/members/viewer/remove/", "302 403 403 403 302 403 302"),
    ("audit:event-list", "get"): Case("/audit/", "302 200 200 200 200 200 302"),
    ("audit:export-csv", "get"): Case("/audit/export.csv", "302 200 200 200 200 200 302"),
    ("audit:export-jsonl", "get"): Case("/audit/export.jsonl", "302 200 200 200 200 200 302"),
    ("audit:event-review", "post"): Case("/audit/{event}/review/", "302 403 403 403 403 403 302"),
    ("deployments:build-detail", "get"): Case("/builds/{build}/", "302 200 200 200 200 200 302"),
    ("deployments:build-cancel", "post"): Case("/builds/{build}/cancel/", "302 403 302 302 302 403 302"),
    ("deployments:build-start", "post"): Case("/models/vision/iris/v1/build/", "302 403 302 302 302 403 302"),
    ("deployments:environment-list", "get"): Case("/environments/", "302 200 200 200 200 200 302"),
    ("deployments:environment-create", "get"): Case("/environments/new/", "302 403 403 403 200 200 302"),
    ("deployments:environment-detail", "get"): Case("/environments/{dev}/", "302 200 200 200 200 200 302"),
    ("deployments:environment-edit", "get"): Case("/environments/{dev}/edit/", "302 403 403 403 200 403 302"),
    ("deployments:environment-test", "post"): Case("/environments/{dev}/test/", "302 403 403 403 302 403 302"),
    ("deployments:freeze-create", "post"): Case(
        "/environments/{dev}/freezes/",
        "302 403 403 403 302 403 302",
        {"starts_at": "2030-01-01T00:00", "ends_at": "2030-01-02T00:00", "reason": "r"},
    ),
    ("deployments:freeze-delete", "post"): Case(
        "/environments/{dev}/freezes/{freeze}/delete/", "302 403 403 403 302 403 302"
    ),
    ("deployments:acceptance-create", "post"): Case(
        "/environments/{dev}/acceptances/",
        "302 403 403 403 302 403 302",
        {"model": "{model}", "advisory_id": "CVE-2026-1", "reason": "r", "expires_at": "{soon_local}"},
    ),
    ("deployments:acceptance-revoke", "post"): Case(
        "/environments/{dev}/acceptances/{acceptance}/revoke/", "302 403 403 403 302 403 302"
    ),
    ("deployments:rollout-rollback", "post"): Case(
        "/environments/{dev}/rollback/", "302 403 302 302 302 403 302", {"model": "{model}"}
    ),
    ("deployments:rollout-detail", "get"): Case("/rollouts/{rollout}/", "302 200 200 200 200 200 302"),
    ("deployments:rollout-cancel", "post"): Case("/rollouts/{rollout}/cancel/", "302 403 302 302 302 403 302"),
    ("deployments:rollout-start", "post"): Case(
        "/models/vision/iris/v1/deploy/", "302 403 302 302 302 403 302", {"environment": "{dev}"}
    ),
    ("deployments:promotion-list", "get"): Case("/promotions/", "302 200 200 200 200 200 302"),
    ("deployments:promotion-detail", "get"): Case("/promotions/{promotion}/", "302 200 200 200 200 200 302"),
    ("deployments:promotion-decide", "post"): Case(
        "/promotions/{promotion}/approve/", "302 403 403 302 302 403 302", {"digest": DIGEST}
    ),
    ("deployments:promotion-create", "post"): Case(
        "/models/vision/iris/v1/promote/", "302 403 302 302 302 403 302", {"environment": "{prod}", "reason": "r"}
    ),
    ("deployments:registry-list", "get"): Case("/settings/registries/", "302 403 403 403 200 200 302"),
    ("deployments:registry-create", "get"): Case("/settings/registries/new/", "302 403 403 403 200 200 302"),
    ("deployments:registry-edit", "get"): Case("/settings/registries/{registry}/", "302 403 403 403 200 404 302"),
    ("deployments:registry-delete", "post"): Case(
        "/settings/registries/{registry}/delete/", "302 404 404 404 302 404 302"
    ),
    ("registry:model-list", "get"): Case("/models/", "302 200 200 200 200 200 302"),
    ("registry:model-create", "get"): Case("/models/new/", "302 403 200 200 200 200 302"),
    ("registry:model-edit", "get"): Case("/models/vision/iris/edit/", "302 403 200 200 200 403 302"),
    ("registry:model-archive", "post"): Case("/models/vision/iris/archive/", "302 403 403 403 302 403 302"),
    ("registry:version-create", "get"): Case("/models/vision/iris/versions/new/", "302 403 200 200 200 403 302"),
    ("registry:version-artifact", "get"): Case("/models/vision/iris/v1/artifact", "302 200 200 200 200 200 302"),
}


# -- the routes, read from the URL configuration ---------------------------------------------------------


def routes():
    """(url name, methods) of every route; methods is None for a page (a plain Django view)."""

    def walk(patterns, prefix, namespace):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace])) if pattern.namespace else namespace
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                if route.startswith(IGNORED_PREFIXES) or "(?P<format>" in route:
                    continue  # DRF's ".json" suffix variants share their route's entry
                name = ":".join(filter(None, [namespace, pattern.name]))
                actions = getattr(pattern.callback, "actions", None)
                yield name, route, sorted(actions) if actions else None

    return list(walk(get_resolver().url_patterns, "", ""))


def test_every_route_has_an_entry():
    missing = []
    for name, route, methods in routes():
        if name in PUBLIC or name.split(":")[-1] in PUBLIC:
            continue
        if methods is None:
            if not any(key[0] == name for key in [*API, *PAGES]):
                missing.append(f"{name} ({route})")
        else:
            # HEAD is GET without the body: the GET entry covers it.
            missing += [
                f"{method.upper()} {name} ({route})"
                for method in methods
                if method != "head" and (name, method) not in API
            ]
    assert not missing, "routes without an entry in the authorization matrix:\n" + "\n".join(missing)


def test_no_entry_names_a_route_that_is_gone():
    names = {name for name, _, _ in routes()}
    assert {name for name, _ in [*API, *PAGES]} - names == set()


# -- the world every principal meets ------------------------------------------------------------------------


@pytest.fixture
def world(team, other_team, owner, teammate, approver, viewer):
    dual = member(team, "dual", Role.VIEWER)
    MembershipFactory(team=other_team, user=dual, role=Role.ADMIN)
    both = member(team, "both", Role.ADMIN)
    MembershipFactory(team=other_team, user=both, role=Role.ADMIN)
    RegistryFactory()  # the global one
    registry = RegistryFactory(team=team)
    model = ModelFactory(team=team, name="iris", created_by=teammate)
    ModelFactory(team=other_team, name="theirs")
    version = VersionFactory(
        model=model, number=1, created_by=teammate, artifact=SimpleUploadedFile("model.joblib", b"model bytes")
    )
    build = succeeded_build(version)
    dev = EnvironmentFactory(name="dev", team=team, position=10)
    prod = EnvironmentFactory(name="prod", team=team, position=30, protected=True)
    rollout = Rollout.objects.create(
        environment=dev,
        model=model,
        version=version,
        build=build,
        image=build.digest_reference,
        state=RolloutState.SUCCEEDED,
        finished_at=timezone.now(),
        requested_by=teammate,
    )
    promotion = PromotionRequest.objects.create(
        environment=prod,
        model=model,
        version=version,
        build=build,
        image=build.digest_reference,
        requested_by=teammate,
        reason="ship",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    now = timezone.now()
    freeze = FreezeWindow.objects.create(
        environment=dev, starts_at=now + timedelta(days=30), ends_at=now + timedelta(days=31), reason="later"
    )
    webhook = Webhook.objects.create(team=team, url="https://hooks.example.com/in", secret="whsec_x")
    event = AuditEvent.objects.create(action="model.create", actor_username="teammate", team=team)
    acceptance = FindingAcceptance.objects.create(
        environment=dev,
        model=model,
        advisory_id="CVE-2026-0",
        reason="r",
        expires_at=now + timedelta(days=5),
        accepted_by=owner,
    )
    token_create(user=teammate, name="ci")
    _, token_secret = token_create(user=both, name="read-other", scopes=["read"], teams=["other"])
    ids = {
        name: obj.pk
        for name, obj in {
            "model": model,
            "version": version,
            "build": build,
            "registry": registry,
            "dev": dev,
            "prod": prod,
            "rollout": rollout,
            "promotion": promotion,
            "freeze": freeze,
            "webhook": webhook,
            "event": event,
            "acceptance": acceptance,
        }.items()
    }
    ids["soon"] = (now + timedelta(days=3)).isoformat()
    ids["soon_local"] = (now + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    ids["developer_token"] = ApiToken.objects.get(user=teammate).pk
    users = {"viewer": viewer, "developer": teammate, "approver": approver, "admin": owner, "dual": dual}
    return ids, users, token_secret


def filled(value, ids):
    if isinstance(value, str):
        text = value.format(**ids)
        return int(text) if text.isdigit() and value.startswith("{") else text
    if isinstance(value, dict):
        return {key: filled(item, ids) for key, item in value.items()}
    return value


def client_for(principal, world) -> APIClient:
    _, users, token_secret = world
    client = APIClient()
    if principal == "token":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_secret}")
    elif principal != "anonymous":
        client.force_login(users[principal])
    return client


def call(client, method, case, ids):
    url = case.url.format(**ids)
    if case.body is None:
        return getattr(client, method)(url)
    if callable(case.body):
        return getattr(client, method)(url, case.body(), format="multipart")
    body = filled(case.body, ids)
    if url.startswith("/api/"):
        return getattr(client, method)(url, body, format="json")
    return getattr(client, method)(url, body)


class Rollback(Exception):
    pass


CASES = [*API.items(), *PAGES.items()]


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_authorization_matrix(world, principal):
    """Every entry for one principal; each request in a savepoint rolled back after it, so each meets
    the same world. All the differences are reported at once."""
    client = client_for(principal, world)
    column = PRINCIPALS.index(principal)
    wrong = []
    for (name, method), case in CASES:
        expected = int(case.expected.split()[column])
        try:
            with transaction.atomic():
                answered = call(client, method, case, world[0]).status_code
                raise Rollback
        except Rollback:
            pass
        if answered != expected:
            wrong.append(f"{method.upper()} {case.url} ({name}): {answered}, expected {expected}")
    assert not wrong, f"{principal}:\n" + "\n".join(wrong)


ACTION_PAGES = [
    (name, case) for (name, method), case in PAGES.items() if method == "post" and (name, "get") not in PAGES
]


def test_every_action_url_opened_with_get_goes_to_its_object(world):
    """No bare 405 page: each POST-only page answers a GET with a redirect to what it acts on."""
    client = client_for("developer", world)
    wrong = []
    for name, case in ACTION_PAGES:
        url = case.url.format(**world[0])
        response = client.get(url)
        location = response.get("Location", "")
        if response.status_code != 302 or location.startswith("/login/") or location == url:
            wrong.append(f"{name} {url}: {response.status_code} {location}")
    assert not wrong, "\n".join(wrong)
    assert len(ACTION_PAGES) >= 15


# -- what each token scope opens, and what no role opens ------------------------------------------------------

# (method, url, body, expected for a token of the admin with only "read" / only "deploy" / only "approve")
SCOPES = ("read", "deploy", "approve")
SCOPE_CASES = [
    ("get", "/api/v1/builds/{build}/", None, "200 403 403"),
    ("post", "/api/v1/rollouts/", {"version": "{version}", "environment": "{dev}"}, "403 201 403"),
    ("post", "/api/v1/promotions/{promotion}/approve/", {"digest": DIGEST}, "403 403 200"),
    ("post", "/api/v1/environments/", {"name": "qa", "team": "vision", "target": "docker"}, "403 403 403"),
]


@pytest.mark.parametrize("scope", SCOPES)
def test_each_token_scope_opens_its_own_actions_only(world, scope):
    ids, users, _ = world
    _, secret = token_create(user=users["admin"], name=f"only-{scope}", scopes=[scope])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    wrong = []
    for method, url, body, expected in SCOPE_CASES:
        answered = call(client, method, Case(url, expected, body), ids).status_code
        if answered != int(expected.split()[SCOPES.index(scope)]):
            wrong.append(f"{method.upper()} {url}: {answered}, expected {expected}")
    assert not wrong, f"a token with only '{scope}':\n" + "\n".join(wrong)


@pytest.mark.parametrize("principal", ["developer", "approver", "admin"])
def test_no_role_deploys_directly_into_a_protected_environment(world, principal):
    ids = world[0]
    response = client_for(principal, world).post(
        "/api/v1/rollouts/", {"version": ids["version"], "environment": ids["prod"]}, format="json"
    )
    assert response.status_code == 403
    assert "request a promotion" in response.json()["detail"]
    assert not Rollout.objects.filter(environment_id=ids["prod"]).exists()
