"""Two sign-ins of the same person at once (two tabs, a double click on the provider's page) through
the real callback: both get in, as one user with one identity and one membership.

The race is made certain, not hoped for: a connection of the test holds a lock on the table both
sign-ins write to, until both are waiting for it; then both go at once."""

import threading

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from accounts.models import Membership, Role, SsoIdentity
from tests.accounts.test_sso import sign_in, signed_in_user
from tests.support.factories import TeamFactory
from tests.support.services import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def waiting_for_a_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def sign_in_together(provider, sub: str, *, table: str) -> list:
    """Both callbacks start while `table` is locked against writes, and run on when both wait."""
    clients = [Client(raise_request_exception=False) for _ in range(2)]
    callbacks = []
    for client in clients:
        start = client.get("/oidc/authenticate/")
        callbacks.append(provider.authorize(start["Location"], sub))
    responses: list = [None, None]

    def callback(index):
        try:
            responses[index] = clients[index].get(callbacks[index])
        finally:
            connection.close()

    database = connection.settings_dict
    with psycopg.connect(
        dbname=database["NAME"], user=database["USER"], host=database["HOST"], port=database["PORT"]
    ) as holder:
        holder.execute(f"LOCK TABLE {table} IN SHARE MODE")
        threads = [threading.Thread(target=callback, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        wait_until(lambda: waiting_for_a_lock() == 2, timeout=30, message=f"both sign-ins to wait to write {table}")
    for thread in threads:
        thread.join(30)
    return [(response, client) for response, client in zip(responses, clients, strict=True)]


def test_two_first_sign_ins_of_a_new_person_at_once_make_one_user(sso, oidc_provider):
    vision = TeamFactory(slug="vision")
    oidc_provider.set_user("u-ivy", email="ivy@example.com", preferred_username="ivy", groups=["ml-approvers"])

    answers = sign_in_together(oidc_provider, "u-ivy", table="auth_user")

    assert [response.status_code for response, _ in answers] == [302, 302]
    [user] = get_user_model().objects.all()
    assert user.username == "ivy"
    assert [signed_in_user(client) for _, client in answers] == [user, user]
    assert SsoIdentity.objects.get().user == user
    assert Membership.objects.get().role == Role.APPROVER and Membership.objects.get().team == vision


def test_two_sign_ins_that_both_add_a_membership_make_one(sso, oidc_provider):
    # Today the update of the user row orders the two before they reach the membership; this holds it.
    vision = TeamFactory(slug="vision")
    oidc_provider.set_user("u-jon", email="jon@example.com", preferred_username="jon", groups=[])
    sign_in(Client(), oidc_provider, "u-jon")
    oidc_provider.set_user("u-jon", email="jon@example.com", preferred_username="jon", groups=["ml-developers"])

    answers = sign_in_together(oidc_provider, "u-jon", table="accounts_membership")

    assert [response.status_code for response, _ in answers] == [302, 302]
    user = get_user_model().objects.get()
    assert list(Membership.objects.values_list("user", "team", "role")) == [(user.pk, vision.pk, Role.DEVELOPER)]
