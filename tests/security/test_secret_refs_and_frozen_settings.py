"""Finding 2: a team admin read other teams' Secrets in a shared namespace, and settings changed after
approval. Secret references are now an allow-list on the environment, and a promotion request freezes
the settings its approvers approve."""

from __future__ import annotations

import pytest

from accounts.models import Role
from deployments.models import PromotionRequest, Rollout
from tests.conftest import member
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build


@pytest.fixture
def shared(team, other_team):
    """A global environment: one namespace shared by two teams, with one Secret allowed."""
    return EnvironmentFactory(
        team=None,
        name="shared",
        target="kubernetes",
        namespace="models",
        allowed_secret_refs=["feature-store"],
        grants={team: Role.ADMIN, other_team: Role.ADMIN},
    )


def _model_settings(client, environment, model, settings):
    return client.post(
        f"/api/v1/environments/{environment.pk}/model-settings/",
        {"model": model.pk, "deployment_settings": settings},
        format="json",
    )


def test_a_team_admin_references_another_teams_secret_in_a_shared_namespace(api, owner, model, shared):
    response = _model_settings(api.as_user(owner), shared, model, {"secret_refs": ["other-team-db-credentials"]})

    assert response.status_code == 400
    message = response.json()["deployment_settings"][0]
    assert "'other-team-db-credentials' is not a Secret this environment allows" in message
    assert not shared.model_settings.exists()


def test_a_secret_the_environment_admins_allow_is_accepted(api, owner, model, shared):
    response = _model_settings(api.as_user(owner), shared, model, {"secret_refs": ["feature-store"]})
    assert response.status_code == 200, response.json()
    assert response.json()["effective"]["secret_refs"] == ["feature-store"]


def test_a_team_admin_cannot_widen_the_allow_list_of_a_global_environment(api, owner, shared):
    response = api.as_user(owner).patch(
        f"/api/v1/environments/{shared.pk}/", {"allowed_secret_refs": ["other-team-db-credentials"]}, format="json"
    )
    assert response.status_code == 403
    shared.refresh_from_db()
    assert shared.allowed_secret_refs == ["feature-store"]


def test_a_reference_stored_before_the_allow_list_is_refused_when_deploying(api, teammate, model, shared):
    version = VersionFactory(model=model, number=1)
    RegistryFactory()
    succeeded_build(version)
    shared.model_settings.create(model=model, deployment_settings={"secret_refs": ["other-team-db-credentials"]})

    response = api.as_user(teammate).post(
        "/api/v1/rollouts/", {"version": version.pk, "environment": shared.pk}, format="json"
    )

    assert response.status_code == 400
    assert "other-team-db-credentials" in str(response.json())
    assert not Rollout.objects.exists()


def test_settings_changed_after_the_request_do_not_ride_on_its_approval(
    api, owner, teammate, approver, model, django_capture_on_commit_callbacks
):
    prod = EnvironmentFactory(
        team=None,
        name="prod",
        protected=True,
        required_approvals=1,
        allowed_secret_refs=["feature-store"],
        grants={model.team: Role.ADMIN},
    )
    RegistryFactory()
    version = VersionFactory(model=model, number=1)
    succeeded_build(version)
    promotion = api.as_user(teammate).post(
        "/api/v1/promotions/", {"version": version.pk, "environment": prod.pk, "reason": "ship it"}, format="json"
    )
    assert promotion.status_code == 201, promotion.json()
    frozen = promotion.json()["deployment_settings"]
    assert frozen["replicas"] == 1 and frozen["secret_refs"] == []

    # After the request (the approvers saw replicas 1 and no Secrets), the team admin changes them.
    changed = _model_settings(api.as_user(owner), prod, model, {"replicas": 40, "secret_refs": ["feature-store"]})
    assert changed.status_code == 200, changed.json()

    with django_capture_on_commit_callbacks(execute=False):
        approved = api.as_user(approver).post(
            f"/api/v1/promotions/{promotion.json()['id']}/approve/",
            {"digest": promotion.json()["image"]},
            format="json",
        )
    assert approved.status_code == 200, approved.json()
    rollout = PromotionRequest.objects.get().rollout
    assert rollout is not None
    assert rollout.deployment_settings == frozen, "the rollout deploys what was approved"


def test_an_environment_admin_sets_the_allow_list_and_bad_names_are_refused(api, team):
    admin = member(team, "env-admin", Role.ADMIN)
    response = api.as_user(admin).post(
        "/api/v1/environments/",
        {"name": "dev", "team": "vision", "target": "docker", "allowed_secret_refs": ["Not_A_Secret"]},
        format="json",
    )
    assert response.status_code == 400
    assert "allowed_secret_refs" in response.json()
