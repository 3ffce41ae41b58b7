"""Demo data for `make run`: a team, four users with known passwords. Safe to run twice."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.models import Membership, Role, Team

DEMO_USERS = [
    # username, role in team "vision", password, site admin
    ("alice", Role.DEVELOPER, "alice-slipway", False),
    ("bob", Role.APPROVER, "bob-slipway", False),
    ("carol", Role.VIEWER, "carol-slipway", False),
    ("admin", Role.ADMIN, "admin-slipway", True),
]


class Command(BaseCommand):
    help = "Create the demo team and users (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        team, _ = Team.objects.get_or_create(
            slug="vision", defaults={"name": "Vision", "description": "Image and sensor models."}
        )
        User = get_user_model()
        for username, role, password, superuser in DEMO_USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.com", "first_name": username.title()}
            )
            if created or not user.check_password(password):
                user.set_password(password)
            user.is_superuser = user.is_staff = superuser
            user.save()
            Membership.objects.update_or_create(team=team, user=user, defaults={"role": role})
        self.stdout.write("Demo logins (team 'vision'):")
        for username, role, password, superuser in DEMO_USERS:
            kind = "site admin" if superuser else role.label.lower()
            self.stdout.write(f"  {username:<6} / {password:<14} {kind}")
