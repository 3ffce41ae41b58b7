"""Approvals under real concurrency: many HTTP requests at the same instant, against PostgreSQL."""

import threading

import pytest
import requests

from accounts import services as account_services
from accounts.models import Role
from deployments.models import Approval, PromotionRequest, PromotionState, Rollout
from tests.conftest import member
from tests.support.factories import EnvironmentFactory, RegistryFactory, VersionFactory, succeeded_build

pytestmark = pytest.mark.django_db(transaction=True)


def test_twenty_simultaneous_approvals_from_five_approvers_count_two_and_deploy_once(live_server, team, teammate):
    RegistryFactory()
    prod = EnvironmentFactory(name="prod", position=30, protected=True, required_approvals=2, grants={team: Role.ADMIN})
    version = VersionFactory(model__team=team, model__name="fraud", number=1)
    succeeded_build(version)
    tokens = []
    for n in range(5):
        user = member(team, f"approver-{n}", Role.APPROVER)
        tokens.append(account_services.token_create(user=user, name="ci", scopes=["read", "approve"])[1])
    requester_token = account_services.token_create(user=teammate, name="ci", scopes=["read", "deploy"])[1]
    created = requests.post(
        f"{live_server.url}/api/v1/promotions/",
        json={"version": version.pk, "environment": prod.pk, "reason": "ship it"},
        headers={"Authorization": f"Bearer {requester_token}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    url = f"{live_server.url}/api/v1/promotions/{created.json()['id']}/approve/"
    digest = created.json()["image"]

    start = threading.Barrier(20)
    statuses = []

    def approve(token):
        start.wait()
        response = requests.post(
            url, json={"comment": "ok", "digest": digest}, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=approve, args=(tokens[n % 5],)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(statuses) == 20 and 500 not in statuses
    assert statuses.count(200) == 2
    promotion = PromotionRequest.objects.get()
    assert promotion.state == PromotionState.APPROVED
    assert Approval.objects.filter(request=promotion, decision="approve").count() == 2
    assert Rollout.objects.count() == 1
    assert promotion.rollout == Rollout.objects.get()
