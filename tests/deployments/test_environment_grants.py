"""The roles a global environment grants to teams: set through the environment API and its settings page,
by whoever the policy lets administer a global environment (site administrators), and shown to each
caller only for the teams they see."""

import pytest

from accounts.models import Role
from accounts.services import token_create
from audit.models import AuditEvent
from deployments.models import EnvironmentGrant
from tests.conftest import member
from tests.support.factories import (
    EnvironmentFactory,
    MembershipFactory,
    RegistryFactory,
    VersionFactory,
    grant,
    succeeded_build,
)


@pytest.fixture
def shared():
    return EnvironmentFactory(name="shared", position=10)


def granted(environment) -> dict[str, str]:
    return dict(environment.grants.values_list("team__slug", "role"))


def test_a_site_admin_creates_a_global_environment_with_grants_and_the_team_deploys_there(
    api, site_admin, teammate, model, team
):
    response = api.as_user(site_admin).post(
        "/api/v1/environments/",
        {"name": "edge", "target": "docker", "grants": [{"team": "vision", "role": "developer"}]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["team"] is None
    assert response.json()["grants"] == [{"team": "vision", "role": "developer"}]
    event = AuditEvent.objects.get(action="environment.create")
    assert event.after["grants"] == {"vision": "developer"}
    RegistryFactory()
    version = VersionFactory(model=model, number=1)
    succeeded_build(version)
    deployed = api.as_user(teammate).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": response.json()["id"]}, format="json"
    )
    assert deployed.status_code == 201, deployed.json()


def test_a_list_of_grants_replaces_the_one_there_and_leaving_it_out_keeps_it(api, site_admin, shared, team, other_team):
    client = api.as_user(site_admin)
    url = f"/api/v1/environments/{shared.pk}/"
    grants = [{"team": "vision", "role": "admin"}, {"team": "other", "role": "viewer"}]
    assert client.patch(url, {"grants": grants}, format="json").status_code == 200
    assert granted(shared) == {"vision": "admin", "other": "viewer"}
    response = client.patch(url, {"grants": [{"team": "other", "role": "approver"}]}, format="json")
    assert response.json()["grants"] == [{"team": "other", "role": "approver"}]
    assert granted(shared) == {"other": "approver"}
    assert client.patch(url, {"description": "edge nodes"}, format="json").status_code == 200
    assert granted(shared) == {"other": "approver"}
    event = AuditEvent.objects.filter(action="environment.update").order_by("pk")[1]
    assert (event.before["grants"], event.after["grants"]) == (
        {"other": "viewer", "vision": "admin"},
        {"other": "approver"},
    )
    assert client.patch(url, {"grants": []}, format="json").json()["grants"] == []
    assert not shared.grants.exists()


def test_a_team_admin_cannot_grant_their_team_a_role_in_a_global_environment(api, owner, shared, team):
    grant(shared, team, role=Role.VIEWER)  # else the environment is out of the team's sight (404)
    response = api.as_user(owner).patch(
        f"/api/v1/environments/{shared.pk}/", {"grants": [{"team": "vision", "role": "admin"}]}, format="json"
    )
    assert response.status_code == 403
    assert "site administrators" in response.json()["detail"]
    assert granted(shared) == {"vision": "viewer"}
    assert AuditEvent.objects.filter(action="team.manage", outcome="refused").count() == 1


def test_a_global_environment_is_seen_only_by_the_teams_it_grants_a_role(
    api, owner, viewer, site_admin, shared, team, other_team
):
    shared.docker_url = "ssh://deploy@edge-7.example.net"
    shared.save()
    other_only = EnvironmentFactory(name="other-only", grants={other_team: Role.ADMIN})
    url = f"/api/v1/environments/{shared.pk}/"
    for user in (owner, viewer):
        client = api.as_user(user)
        assert client.get(url).status_code == 404
        assert client.get(f"/api/v1/environments/{other_only.pk}/").status_code == 404
        listed = client.get("/api/v1/environments/?page_size=100").json()["results"]
        assert {"shared", "other-only"}.isdisjoint(environment["name"] for environment in listed)
        assert "edge-7" not in client.get("/api/v1/environments/").content.decode()

    grant(shared, team, role=Role.VIEWER)
    seen = api.as_user(viewer).get(url)
    assert seen.status_code == 200 and seen.json()["docker_url"] == "ssh://deploy@edge-7.example.net"
    assert api.as_user(viewer).get(f"/api/v1/environments/{other_only.pk}/").status_code == 404
    listed = api.as_user(site_admin).get("/api/v1/environments/?page_size=100").json()["results"]
    assert {"shared", "other-only"} <= {environment["name"] for environment in listed}


def test_a_teams_own_environment_grants_nothing(api, owner, team, other_team):
    response = api.as_user(owner).post(
        "/api/v1/environments/",
        {"name": "dev", "team": "vision", "target": "docker", "grants": [{"team": "vision", "role": "admin"}]},
        format="json",
    )
    assert response.status_code == 400
    assert "global environments only" in response.json()["grants"][0]
    assert not EnvironmentGrant.objects.exists()


@pytest.mark.parametrize(
    ("grants", "answer"),
    [
        ([{"team": "nobody", "role": "developer"}], {"0": {"team": ["Object with slug=nobody does not exist."]}}),
        ([{"team": "vision", "role": "owner"}], {"0": {"role": ['"owner" is not a valid choice.']}}),
        ([{"team": "vision", "role": "viewer"}, {"team": "vision"}], {"1": {"role": ["This field is required."]}}),
        ("vision", {"non_field_errors": ['Expected a list of items but got type "str".']}),
        (
            [{"team": "vision", "role": "viewer"}, {"team": "vision", "role": "admin"}],
            ["Team 'vision' is granted a role twice; give it one."],
        ),
    ],
)
def test_bad_grants_are_a_400_naming_the_field(api, site_admin, shared, team, grants, answer):
    response = api.as_user(site_admin).patch(f"/api/v1/environments/{shared.pk}/", {"grants": grants}, format="json")
    assert response.status_code == 400
    assert response.json() == {"grants": answer}
    assert not shared.grants.exists()


def test_each_caller_sees_the_grants_of_the_teams_they_see_only(api, shared, team, other_team, teammate, stranger):
    EnvironmentGrant.objects.create(environment=shared, team=team, role=Role.DEVELOPER)
    EnvironmentGrant.objects.create(environment=shared, team=other_team, role=Role.ADMIN)
    mine = api.as_user(teammate).get(f"/api/v1/environments/{shared.pk}/").json()["grants"]
    theirs = api.as_user(stranger).get("/api/v1/environments/").json()["results"][0]["grants"]
    assert mine == [{"team": "vision", "role": "developer"}]
    assert theirs == [{"team": "other", "role": "admin"}]
    # Asking to grant a team one does not see reveals nothing of that team.
    unknown = api.as_user(teammate).patch(
        f"/api/v1/environments/{shared.pk}/", {"grants": [{"team": "other", "role": "viewer"}]}, format="json"
    )
    assert unknown.json() == {"grants": {"0": {"team": ["Object with slug=other does not exist."]}}}


# -- the settings page ---------------------------------------------------------------------------------------


def test_a_site_admin_sets_grants_on_the_settings_page(client, site_admin, shared, team, other_team):
    client.force_login(site_admin)
    form = client.get(f"/environments/{shared.pk}/edit/").content.decode()
    assert f'name="grants-{team.pk}"' in form and f'name="grants-{other_team.pk}"' in form
    body = {"name": "shared", "position": 10, "target": "docker", "docker_url": "unix:///var/run/docker.sock"}
    body |= {"bind_address": "127.0.0.1", "required_approvals": 1, "approval_expiry_hours": 72}
    body |= {"four_eyes": "requester", f"grants-{team.pk}": "developer", f"grants-{other_team.pk}": ""}
    response = client.post(f"/environments/{shared.pk}/edit/", body)
    assert response.status_code == 302, response.content.decode()
    assert granted(shared) == {"vision": "developer"}
    page = client.get(f"/environments/{shared.pk}/").content.decode()
    assert "<strong>vision</strong> up to developer" in page
    form = client.get(f"/environments/{shared.pk}/edit/").content.decode()
    assert '<option value="developer" selected>' in form


def test_a_settings_page_post_loses_no_grant_it_did_not_show(client, site_admin, shared, team, other_team):
    """A page loaded before a team got its grant, or a post without the grant selects, leaves those
    grants alone; a bad role is a form error beside the field."""
    EnvironmentGrant.objects.create(environment=shared, team=other_team, role=Role.APPROVER)
    client.force_login(site_admin)
    body = {"name": "shared", "position": 10, "target": "docker", "docker_url": "unix:///var/run/docker.sock"}
    body |= {"bind_address": "127.0.0.1", "required_approvals": 1, "approval_expiry_hours": 72}
    body |= {"four_eyes": "requester"}
    url = f"/environments/{shared.pk}/edit/"
    assert client.post(url, body).status_code == 302
    assert granted(shared) == {"other": "approver"}
    assert client.post(url, body | {f"grants-{team.pk}": "viewer"}).status_code == 302
    assert granted(shared) == {"other": "approver", "vision": "viewer"}
    refused = client.post(url, body | {f"grants-{team.pk}": "owner"})
    assert refused.status_code == 400
    assert refused.context["form"].errors["grants"] == ["'owner' is not a role."]
    assert granted(shared) == {"other": "approver", "vision": "viewer"}
    assert client.post(url, body | {f"grants-{other_team.pk}": ""}).status_code == 302  # "No role"
    assert granted(shared) == {"vision": "viewer"}


def test_a_new_team_environment_with_grants_is_refused_beside_the_field(client, site_admin, team):
    client.force_login(site_admin)
    body = {"name": "dev", "team": team.pk, "position": 10, "target": "docker"}
    body |= {"docker_url": "unix:///var/run/docker.sock", "bind_address": "127.0.0.1", "required_approvals": 1}
    body |= {"approval_expiry_hours": 72, "four_eyes": "requester", f"grants-{team.pk}": "admin"}
    response = client.post("/environments/new/", body)
    assert response.status_code == 400
    assert "global environments only" in response.context["form"].errors["grants"][0]
    assert not EnvironmentGrant.objects.exists()


def test_a_team_admin_is_offered_no_grants(client, owner, team):
    environment = EnvironmentFactory(name="dev", team=team)
    client.force_login(owner)
    assert "grants-" not in client.get(f"/environments/{environment.pk}/edit/").content.decode()
    assert "grants-" not in client.get("/environments/new/").content.decode()


def test_a_global_environment_page_says_which_of_my_teams_deploy_there(client, teammate, shared, team):
    client.force_login(teammate)
    assert client.get(f"/environments/{shared.pk}/").status_code == 404  # granting the team nothing, it is not shown
    EnvironmentGrant.objects.create(environment=shared, team=team, role=Role.DEVELOPER)
    assert "<strong>vision</strong> up to developer" in client.get(f"/environments/{shared.pk}/").content.decode()


def test_an_api_token_reads_only_the_global_environments_granting_its_teams_a_role(api, team, other_team):
    both = member(team, "both", Role.DEVELOPER)
    MembershipFactory(team=other_team, user=both, role=Role.DEVELOPER)
    EnvironmentFactory(name="ungranted", docker_url="ssh://deploy@edge-1.example.net")
    EnvironmentFactory(name="for-other", docker_url="ssh://deploy@edge-2.example.net", grants={other_team: Role.ADMIN})
    EnvironmentFactory(name="for-vision", docker_url="ssh://deploy@edge-3.example.net", grants={team: Role.VIEWER})

    def seen(token):
        response = api.with_token(token).get("/api/v1/environments/?page_size=100")
        assert response.status_code == 200, response.content
        return sorted(environment["name"] for environment in response.json()["results"]), response.content.decode()

    names, body = seen(token_create(user=both, name="any-team", scopes=["read"])[1])
    assert names == ["for-other", "for-vision"] and "edge-1" not in body
    names, body = seen(token_create(user=both, name="vision-only", scopes=["read"], teams=["vision"])[1])
    assert names == ["for-vision"] and "edge-1" not in body and "edge-2" not in body
