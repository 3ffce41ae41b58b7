"""Teams, the roles their members hold, and personal API tokens."""

import functools

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.functional import cached_property

SLUG_RULE = "lowercase letters, digits and '-', starting with a letter, at most 63 characters"
dns_label_validator = RegexValidator(
    r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$",
    message=f"Use a DNS-1123 label: {SLUG_RULE}, not ending with '-'.",
)


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    DEVELOPER = "developer", "Developer"
    APPROVER = "approver", "Approver"
    ADMIN = "admin", "Admin"

    @property
    def rank(self) -> int:
        return ROLE_RANK[self.value]


# Each role can do everything the roles below it can.
ROLE_RANK: dict[str, int] = {Role.VIEWER: 10, Role.DEVELOPER: 20, Role.APPROVER: 30, Role.ADMIN: 40}


class Team(models.Model):
    slug = models.CharField(max_length=63, unique=True, validators=[dns_label_validator])
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class Membership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]
        ordering = ["team__slug", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    DEPLOY = "deploy", "Register, build and deploy"
    APPROVE = "approve", "Approve promotions"


class ApiTokenQuerySet(models.QuerySet):
    def usable(self):
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class ApiToken(models.Model):
    """A personal token for scripts. Only a keyed digest of the secret is stored.

    The visible prefix lets a user tell tokens apart and lets the server find the row
    without storing anything that could be replayed.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    # Optional limits: a token for one team's CI need not reach the others, nor prod.
    teams = models.ManyToManyField(Team, blank=True, related_name="+", help_text="Empty: all of the user's teams.")
    environment_names = models.JSONField(default=list, blank=True, help_text="Empty: every environment.")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="token_name_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def allows_environment(self, name: str) -> bool:
        return not self.environment_names or name in self.environment_names

    @cached_property
    def team_ids(self) -> frozenset[int]:
        """The teams the token is limited to; empty: all of its user's teams. They are set when the token
        is made, in its transaction, and never change (the admin shows them read-only), so each process
        reads them once per token. The token's own row is still read at every request: revoked or
        expired, it is refused before its teams matter."""
        return _token_team_ids(self.pk, self.prefix)


@functools.lru_cache(maxsize=4096)
def _token_team_ids(pk: int, prefix: str) -> frozenset[int]:
    # Keyed by the random prefix too: a test database that reuses an id never gets another token's teams.
    through = ApiToken.teams.through.objects.filter(apitoken_id=pk, apitoken__prefix=prefix)
    return frozenset(through.values_list("team_id", flat=True))


class SsoIdentity(models.Model):
    """Who a user is at the identity provider: the token's issuer and subject, which never change
    (an email address or a user name can, and may be reused)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    groups = models.JSONField(default=list, blank=True, help_text="The provider's groups at the last sign-in.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="one_user_per_sso_subject")]

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"
