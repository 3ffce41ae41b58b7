"""The site administrator's Django admin, used as a person would: a form posted with what the page asks for."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Membership, Role, Team

pytestmark = pytest.mark.django_db


def test_a_team_and_its_first_member_are_added_without_typing_any_time(client, site_admin):
    dave = get_user_model().objects.create_user("dave")
    client.force_login(site_admin)
    page = client.get("/admin/accounts/team/add/")
    assert page.status_code == 200
    assert 'name="created_at_0"' not in page.content.decode()  # no date and time for a person to type

    answer = client.post(
        "/admin/accounts/team/add/",
        {
            "slug": "nlp",
            "name": "NLP",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "0",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-user": str(dave.pk),
            "memberships-0-role": Role.ADMIN,
        },
    )

    assert answer.status_code == 302, answer.content.decode()[:3000]
    team = Team.objects.get(slug="nlp")
    assert team.created_at is not None
    assert Membership.objects.get(team=team, user=dave).role == Role.ADMIN
