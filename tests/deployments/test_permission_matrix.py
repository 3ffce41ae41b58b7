"""Every deployments endpoint and page, for every kind of caller and every token scope."""

import pytest
from django.utils import timezone

from accounts.models import Role
from deployments.models import PromotionRequest, Rollout, RolloutState
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build

DIGEST = "sha256:" + "a" * 64  # the image succeeded_build() pushes
CALLERS = ["viewer", "teammate", "approver", "owner", "stranger", "anonymous"]


@pytest.fixture
def world(model, teammate, viewer, approver, owner, stranger):
    RegistryFactory()
    version = VersionFactory(model=model, number=1)
    build = succeeded_build(version)
    dev = EnvironmentFactory(name="dev", position=10, grants={model.team: Role.ADMIN})
    prod = EnvironmentFactory(name="prod", position=30, protected=True, grants={model.team: Role.ADMIN})
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
        expires_at=timezone.now() + timezone.timedelta(hours=1),
    )
    return {
        "model": model,
        "version": version,
        "build": build,
        "dev": dev,
        "prod": prod,
        "rollout": rollout,
        "promotion": promotion,
    }


def call(client, method, url, body, world):
    url = url.format(**{k: v.pk for k, v in world.items()})
    if isinstance(body, dict):
        body = {k: (world[v[1:]].pk if isinstance(v, str) and v.startswith("@") else v) for k, v in body.items()}
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


API_CASES = [
    ("get", "/api/v1/builds/{build}/", None, [200, 200, 200, 200, 404, 401]),
    ("get", "/api/v1/builds/{build}/log/", None, [200, 200, 200, 200, 404, 401]),
    ("post", "/api/v1/builds/", {"version": "@version"}, [403, 201, 201, 201, 400, 401]),
    ("get", "/api/v1/environments/{dev}/", None, [200, 200, 200, 200, 200, 401]),
    ("get", "/api/v1/environments/{dev}/releases/", None, [200, 200, 200, 200, 200, 401]),
    (
        "post",
        "/api/v1/environments/",
        {"name": "qa", "team": "vision", "target": "docker"},
        [403, 403, 403, 201, 400, 401],
    ),
    ("get", "/api/v1/rollouts/{rollout}/", None, [200, 200, 200, 200, 404, 401]),
    ("post", "/api/v1/rollouts/", {"version": "@version", "environment": "@dev"}, [403, 201, 201, 201, 400, 401]),
    ("post", "/api/v1/rollouts/", {"version": "@version", "environment": "@prod"}, [403, 403, 403, 403, 400, 401]),
    ("post", "/api/v1/environments/{dev}/rollback/", {"model": "@model"}, [403, 400, 400, 400, 400, 401]),
    ("get", "/api/v1/promotions/{promotion}/changes/", None, [200, 200, 200, 200, 404, 401]),
    ("post", "/api/v1/promotions/{promotion}/approve/", {"digest": DIGEST}, [403, 403, 200, 200, 404, 401]),
    ("post", "/api/v1/promotions/{promotion}/cancel/", None, [403, 200, 403, 200, 404, 401]),
    ("get", "/api/v1/audit/", None, [200, 200, 200, 200, 200, 401]),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "expected"), API_CASES, ids=[f"{c[0]} {c[1]} {i}" for i, c in enumerate(API_CASES)]
)
@pytest.mark.parametrize("caller", CALLERS)
def test_api_roles_matrix(request, api, world, caller, method, url, body, expected):
    client = api if caller == "anonymous" else api.as_user(request.getfixturevalue(caller))
    response = call(client, method, url, body, world)
    assert response.status_code == expected[CALLERS.index(caller)], response.content[:300]


TOKEN_CASES = [
    # (method, url, body, expected for a token with only read / only deploy / only approve)
    ("get", "/api/v1/builds/{build}/", None, [200, 403, 403]),
    ("post", "/api/v1/rollouts/", {"version": "@version", "environment": "@dev"}, [403, 201, 403]),
    ("post", "/api/v1/promotions/{promotion}/approve/", {"digest": DIGEST}, [403, 403, 200]),
    ("post", "/api/v1/environments/", {"name": "qa", "team": "vision", "target": "docker"}, [403, 403, 403]),
]


@pytest.mark.parametrize(
    ("method", "url", "body", "expected"), TOKEN_CASES, ids=[f"{c[0]} {c[1]}" for c in TOKEN_CASES]
)
@pytest.mark.parametrize("scope", ["read", "deploy", "approve"])
def test_token_scope_matrix(api, world, owner, token_for, scope, method, url, body, expected):
    client = api.with_token(token_for(owner, scopes=[scope]))
    response = call(client, method, url, body, world)
    assert response.status_code == expected[["read", "deploy", "approve"].index(scope)], response.content[:300]


PAGE_CASES = [
    ("/builds/{build}/", [200, 200, 200, 200, 404]),
    ("/rollouts/{rollout}/", [200, 200, 200, 200, 404]),
    ("/promotions/{promotion}/", [200, 200, 200, 200, 404]),
    ("/environments/{dev}/", [200, 200, 200, 200, 200]),
    ("/models/vision/iris/compare/", [200, 200, 200, 200, 404]),
    ("/promotions/", [200, 200, 200, 200, 200]),
    ("/audit/", [200, 200, 200, 200, 200]),
]


@pytest.mark.parametrize(("url", "expected"), PAGE_CASES, ids=[c[0] for c in PAGE_CASES])
@pytest.mark.parametrize("caller", CALLERS[:-1])
def test_page_roles_matrix(request, client, world, caller, url, expected):
    client.force_login(request.getfixturevalue(caller))
    response = client.get(url.format(**{k: v.pk for k, v in world.items()}))
    assert response.status_code == expected[CALLERS.index(caller)]


def test_a_stranger_sees_no_release_of_another_team_in_a_shared_environment(api, world, stranger):
    releases = api.as_user(stranger).get(f"/api/v1/environments/{world['dev'].pk}/releases/").json()
    assert releases == []
