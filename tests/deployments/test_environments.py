"""Environments: who manages them, and credentials that never come back out."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from accounts.models import Role
from audit.models import AuditEvent
from deployments.models import Environment, FreezeWindow, TargetKind
from tests.support.factories import EnvironmentFactory

KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://k8s.example.com'}}]\n"
    "contexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n"
    "users: [{name: u, user: {token: super-secret-token}}]\n"
)


def stored(environment, column):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM deployments_environment WHERE id = %s", [environment.pk])  # noqa: S608
        return cursor.fetchone()[0]


def test_a_team_admin_adds_a_kubernetes_environment_whose_credentials_stay_secret(api, owner, team):
    response = api.as_user(owner).post(
        "/api/v1/environments/",
        {
            "name": "staging",
            "team": "vision",
            "position": 20,
            "target": "kubernetes",
            "namespace": "ml-staging",
            "kubeconfig": KUBECONFIG,
            "deployment_settings": {"replicas": 2, "memory_limit": "2Gi"},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "kubeconfig" not in body and "kube_token" not in body and body["has_credentials"] is True
    environment = Environment.objects.get()
    assert environment.kubeconfig == KUBECONFIG
    assert "super-secret-token" not in stored(environment, "kubeconfig")
    listed = api.get("/api/v1/environments/").content.decode()
    assert "super-secret-token" not in listed
    page = api.get(f"/environments/{environment.pk}/edit/").content.decode()
    assert "super-secret-token" not in page


@pytest.mark.parametrize(
    ("deployment_settings", "field_text"),
    [
        ({"replicas": -1}, "replicas: must be a whole number"),
        ({"memory_limit": "lots"}, "memory_limit: use a Kubernetes quantity"),
        ({"autoscaling": {"min_replicas": 5, "max_replicas": 2}}, "min_replicas cannot be more than max_replicas"),
        ({"env": {"BAD-NAME": "x"}}, "not a valid variable name"),
        ({"colour": "blue"}, "colour: unknown setting"),
    ],
)
def test_bad_deployment_settings_name_the_setting(api, owner, team, deployment_settings, field_text):
    response = api.as_user(owner).post(
        "/api/v1/environments/",
        {"name": "dev", "team": "vision", "target": "docker", "deployment_settings": deployment_settings},
        format="json",
    )
    assert response.status_code == 400
    assert field_text in response.json()["deployment_settings"][0]


def test_a_kubernetes_environment_needs_credentials_and_a_namespace(api, owner, team):
    response = api.as_user(owner).post(
        "/api/v1/environments/", {"name": "prod", "team": "vision", "target": "kubernetes"}, format="json"
    )
    assert response.status_code == 400
    assert "namespace" in response.json()


@pytest.mark.parametrize("caller", ["teammate", "approver", "viewer"])
def test_only_admins_change_environments(request, api, team, caller):
    environment = EnvironmentFactory(team=team, name="dev")
    client = api.as_user(request.getfixturevalue(caller))
    assert (
        client.patch(f"/api/v1/environments/{environment.pk}/", {"protected": True}, format="json").status_code == 403
    )
    assert (
        client.post(
            "/api/v1/environments/", {"name": "x", "team": "vision", "target": "docker"}, format="json"
        ).status_code
        == 403
    )


def test_global_environments_are_for_site_admins(api, owner, site_admin):
    body = {"name": "shared", "target": "docker"}
    assert api.as_user(owner).post("/api/v1/environments/", body, format="json").status_code == 403
    assert api.as_user(site_admin).post("/api/v1/environments/", body, format="json").status_code == 201


# Where a team's admin may point an environment without connecting (this machine's engine is the site's).
CLUSTER = {"target": "kubernetes", "namespace": "ml", "kube_api_url": "https://k8s.example.net", "kube_token": "t"}


def test_a_team_environment_never_takes_a_global_environment_s_name_nor_the_reverse(api, owner, site_admin, team):
    EnvironmentFactory(name="prod", protected=True)
    shadow = api.as_user(owner).post(
        "/api/v1/environments/", {"name": "prod", "team": "vision", **CLUSTER}, format="json"
    )
    assert shadow.status_code == 400
    assert "global environment" in shadow.json()["name"][0]
    own = api.as_user(owner).post(
        "/api/v1/environments/", {"name": "canary", "team": "vision", **CLUSTER}, format="json"
    )
    assert own.status_code == 201, own.content
    renamed = api.as_user(owner).patch(f"/api/v1/environments/{own.json()['id']}/", {"name": "prod"}, format="json")
    assert renamed.status_code == 400 and "global environment" in renamed.json()["name"][0]
    shared = api.as_user(site_admin).post(
        "/api/v1/environments/", {"name": "canary", "target": "docker"}, format="json"
    )
    assert shared.status_code == 400
    assert "Team 'vision' has an environment named 'canary'" in shared.json()["name"][0]
    assert sorted(Environment.objects.values_list("name", flat=True)) == ["canary", "prod"]


def test_another_teams_environment_is_not_found(api, stranger, team):
    environment = EnvironmentFactory(team=team, name="secret-env", target=TargetKind.DOCKER)
    client = api.as_user(stranger)
    assert client.get(f"/api/v1/environments/{environment.pk}/").status_code == 404
    assert client.get(f"/environments/{environment.pk}/").status_code == 404


def test_the_list_filters_by_team_its_own_and_the_global_ones_granting_it(api, viewer, team, other_team):
    viewer.memberships.create(team=other_team, role=Role.VIEWER)
    EnvironmentFactory(team=team, name="vision-dev")
    EnvironmentFactory(team=other_team, name="other-dev")
    EnvironmentFactory(name="shared-prod", grants={team: Role.DEVELOPER})
    EnvironmentFactory(name="other-prod", grants={other_team: Role.DEVELOPER})
    EnvironmentFactory(name="ungranted")
    client = api.as_user(viewer)

    def names(query):
        response = client.get(f"/api/v1/environments/{query}")
        assert response.status_code == 200, response.json()
        return sorted(environment["name"] for environment in response.json()["results"])

    assert names("") == ["other-dev", "other-prod", "shared-prod", "vision-dev"]  # not "ungranted": no team's
    assert names("?team=vision") == ["shared-prod", "vision-dev"]
    assert names("?team=other") == ["other-dev", "other-prod"]


def test_filtering_by_a_team_out_of_sight_lists_nothing_as_the_other_lists_do(api, stranger, team, other_team):
    EnvironmentFactory(team=team, name="vision-dev")
    EnvironmentFactory(name="shared-prod", grants={team: Role.DEVELOPER, other_team: Role.DEVELOPER})
    client = api.as_user(stranger)

    for query in ("?team=vision", "?team=no-such-team"):
        assert client.get(f"/api/v1/environments/{query}").json()["results"] == []
        assert client.get(f"/api/v1/models/{query}").json()["results"] == []
    assert [e["name"] for e in client.get("/api/v1/environments/?team=other").json()["results"]] == ["shared-prod"]


def test_environment_pages_render(client, owner, team):
    environment = EnvironmentFactory(team=team, name="dev")
    client.force_login(owner)
    assert "dev" in client.get("/environments/").content.decode()
    page = client.get(f"/environments/{environment.pk}/").content.decode()
    assert "Nothing is running here" in page and "Test connection" in page


def test_the_protection_policy_is_set_through_the_api(api, owner, team):

    Group.objects.create(name="release-managers")
    response = api.as_user(owner).post(
        "/api/v1/environments/",
        {
            "name": "prod",
            "team": "vision",
            "target": "kubernetes",
            "namespace": "prod",
            "kube_api_url": "https://k8s.example.net",
            "kube_token": "t",
            "protected": True,
            "required_approvals": 2,
            "approver_groups": ["release-managers"],
            "approval_expiry_hours": 24,
            "requires_previous_stage": True,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    environment = Environment.objects.get()
    assert environment.required_approvals == 2 and environment.requires_previous_stage
    assert [g.name for g in environment.approver_groups.all()] == ["release-managers"]


def test_freeze_windows_are_managed_by_admins_and_audited(api, owner, teammate, team):

    environment = EnvironmentFactory(team=team, name="prod")
    body = {
        "environment": environment.pk,
        "starts_at": "2026-12-20T00:00:00Z",
        "ends_at": "2027-01-03T00:00:00Z",
        "reason": "year-end freeze",
    }
    assert api.as_user(teammate).post("/api/v1/freeze-windows/", body, format="json").status_code == 403
    created = api.as_user(owner).post("/api/v1/freeze-windows/", body, format="json")
    assert created.status_code == 201, created.json()
    backwards = api.as_user(owner).post(
        "/api/v1/freeze-windows/", {**body, "ends_at": "2026-01-01T00:00:00Z"}, format="json"
    )
    assert backwards.status_code == 400 and "end after it starts" in backwards.json()["ends_at"][0]
    assert AuditEvent.objects.filter(action="freeze.create", outcome="succeeded").count() == 1


def test_webhooks_show_their_secret_once(api, owner, teammate, team):
    body = {"team": "vision", "url": "https://hooks.example.com/slipway", "events": ["promotion.approved"]}
    assert api.as_user(teammate).post("/api/v1/webhooks/", body, format="json").status_code == 403
    created = api.as_user(owner).post("/api/v1/webhooks/", body, format="json").json()
    assert created["secret"].startswith("whsec_")
    listed = api.as_user(owner).get("/api/v1/webhooks/").json()["results"]
    assert listed[0]["url"] == body["url"] and "secret" not in listed[0]


def test_a_team_admin_overrides_settings_for_one_model(api, owner, teammate, team, model):
    environment = EnvironmentFactory(
        name="prod", deployment_settings={"replicas": 2, "memory_limit": "2Gi"}, grants={team: Role.ADMIN}
    )
    url = f"/api/v1/environments/{environment.pk}/model-settings/"
    refused = api.as_user(teammate).post(
        url, {"model": model.pk, "deployment_settings": {"replicas": 6}}, format="json"
    )
    assert refused.status_code == 403
    response = api.as_user(owner).post(url, {"model": model.pk, "deployment_settings": {"replicas": 6}}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["effective"]["replicas"] == 6 and response.json()["effective"]["memory_limit"] == "2Gi"
    bad = api.as_user(owner).post(url, {"model": model.pk, "deployment_settings": {"gpus": 99}}, format="json")
    assert bad.status_code == 400 and "gpus" in bad.json()["deployment_settings"][0]
    assert api.as_user(owner).get(url).json() == [
        {"model": model.pk, "name": "iris", "deployment_settings": {"replicas": 6}}
    ]


def test_an_admin_sets_and_removes_a_freeze_window_from_the_page(client, owner, teammate, team):

    environment = EnvironmentFactory(team=team, name="prod")
    url = f"/environments/{environment.pk}/freezes/"
    body = {"starts_at": "2030-12-20T00:00", "ends_at": "2031-01-03T00:00", "reason": "year-end close"}
    client.force_login(teammate)
    assert client.post(url, body).status_code == 403
    assert "Add freeze window" not in client.get(f"/environments/{environment.pk}/").content.decode()
    client.force_login(owner)
    client.post(url, {**body, "ends_at": "2030-01-01T00:00"})
    assert not FreezeWindow.objects.exists()
    client.post(url, body)
    window = FreezeWindow.objects.get()
    assert "year-end close" in client.get(f"/environments/{environment.pk}/").content.decode()
    client.post(f"/environments/{environment.pk}/freezes/{window.pk}/delete/")
    assert not FreezeWindow.objects.exists()
