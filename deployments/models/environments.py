import base64
import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from accounts.models import ROLE_RANK, Role, Team, dns_label_validator
from deployments.crypto import EncryptedTextField
from deployments.deployment_settings import DEFAULTS as DEFAULT_DEPLOYMENT_SETTINGS
from registry.models import RegisteredModel


class TargetKind(models.TextChoices):
    KUBERNETES = "kubernetes", "Kubernetes"
    DOCKER = "docker", "Docker host"


class FourEyes(models.TextChoices):
    REQUESTER = "requester", "Not the requester"
    AUTHORS = "authors", "Not the requester, the version's uploader or the build's trigger"


class Environment(models.Model):
    """A place models run: a namespace of a Kubernetes cluster, or a Docker host.

    Environments form the promotion path by `position` (dev 10, staging 20, prod 30, ...).
    """

    TEAM_LOOKUP = "team"
    ENVIRONMENT_LOOKUP = "name"

    name = models.CharField(max_length=63, validators=[dns_label_validator])
    team = models.ForeignKey(
        Team,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="environments",
        help_text="Empty for a global environment, where only the teams it grants a role deploy.",
    )
    description = models.CharField(max_length=300, blank=True)
    position = models.PositiveIntegerField(default=10, help_text="Order in the promotion path.")
    protected = models.BooleanField(default=False, help_text="Deploying needs an approved promotion.")
    auto_rollback = models.BooleanField(default=True, help_text="Redeploy the previous release when a rollout fails.")
    # Protection policy (used when `protected`).
    required_approvals = models.PositiveSmallIntegerField(default=1, help_text="Distinct approvals needed.")
    approver_groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        help_text="Who may approve. Empty: the team's approvers and admins.",
    )
    reject_requires_comment = models.BooleanField(default=True)
    approval_expiry_hours = models.PositiveIntegerField(default=72, help_text="A request not approved in time expires.")
    block_severity = models.CharField(
        max_length=10,
        blank=True,
        choices=[("low", "Low"), ("medium", "Medium"), ("high", "High"), ("critical", "Critical")],
        help_text="Refuse promotions and deploys of images with findings of this severity or above (empty: off).",
    )
    requires_previous_stage = models.BooleanField(
        default=False, help_text="The same image digest must have succeeded in the environment before this one."
    )
    four_eyes = models.CharField(
        max_length=16,
        choices=FourEyes.choices,
        default=FourEyes.REQUESTER,
        help_text="Who may not approve a request: the requester, or also whoever uploaded or built the version.",
    )
    rollback_during_freeze = models.BooleanField(
        default=False, help_text="Rollbacks may run during a freeze window without a break-glass justification."
    )

    target = models.CharField(max_length=16, choices=TargetKind.choices, default=TargetKind.DOCKER)
    # Kubernetes: an uploaded kubeconfig, or an API URL with its CA and a token.
    kube_api_url = models.URLField(max_length=300, blank=True)
    kube_ca_cert = models.TextField(blank=True)
    kube_token = EncryptedTextField(blank=True)
    kubeconfig = EncryptedTextField(blank=True)
    namespace = models.CharField(max_length=63, blank=True, validators=[dns_label_validator])
    # Docker host: the engine's address and the interface containers publish their port on.
    docker_url = models.CharField(
        max_length=300,
        blank=True,
        default="unix:///var/run/docker.sock",
        help_text="unix:///var/run/docker.sock (this machine), tcp://host:2376 with TLS, or ssh://user@host.",
    )
    bind_address = models.GenericIPAddressField(default="127.0.0.1", protocol="both")
    # A tcp:// engine's TLS: the CA that signed its certificate, and Slipway's client certificate and key.
    docker_tls_ca = EncryptedTextField(blank=True)
    docker_tls_cert = EncryptedTextField(blank=True)
    docker_tls_key = EncryptedTextField(blank=True)
    # An ssh:// host: Slipway's private key, and the host's public key (pinned when an admin gives it,
    # otherwise recorded on the first connection; a host that later shows another key is refused).
    docker_ssh_key = EncryptedTextField(blank=True)
    docker_ssh_host_key = models.CharField(
        max_length=2000,
        blank=True,
        help_text="ssh:// hosts: the host's public key ('ssh-ed25519 AAAA…'). Empty: recorded on first connection.",
    )

    deployment_settings = models.JSONField(default=dict, blank=True)
    allowed_secret_refs = models.JSONField(
        default=list,
        blank=True,
        help_text="Kubernetes Secrets a model may read here (secret_refs); set by the environment's admins.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(team__isnull=True),
                name="global_environment_name_unique",
                violation_error_message="There is already a global environment with this name.",
            ),
            models.UniqueConstraint(
                fields=["team", "name"],
                name="team_environment_name_unique",
                violation_error_message="The team already has an environment with this name.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_credentials(self) -> bool:
        return bool(self.kubeconfig or self.kube_token or self.has_docker_tls or self.has_docker_ssh_key)

    @property
    def has_docker_tls(self) -> bool:
        return bool(self.docker_tls_ca and self.docker_tls_cert and self.docker_tls_key)

    @property
    def has_docker_ssh_key(self) -> bool:
        return bool(self.docker_ssh_key)

    @property
    def docker_ssh_host_key_fingerprint(self) -> str:
        """As `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` prints it on the host, to compare."""
        words = self.docker_ssh_host_key.split()
        if len(words) < 2:
            return ""
        try:
            blob = base64.b64decode(words[1], validate=True)
        except ValueError:
            return ""
        return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")

    def role_cap(self, team: Team) -> str | None:
        """The highest role members of `team` act with here (accounts.permissions asks it). A team's own
        environment takes only that team; a global one only the teams granted a role on it, up to that
        role: a global environment without grants takes nobody's models."""
        if self.team_id is not None:
            return Role.ADMIN if self.team_id == team.pk else None
        # Read from the prefetched grants when a list page loaded them.
        return next((grant.role for grant in self.grants.all() if grant.team_id == team.pk), None)

    def settings_for(self, model: RegisteredModel | None, override: dict | None = None) -> dict:
        return {**DEFAULT_DEPLOYMENT_SETTINGS, **self.deployment_settings, **(override or {})}


class EnvironmentGrant(models.Model):
    """A role a team holds in a global environment: only the granted teams act there, each at most with
    its granted role (and never above its own role)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="grants")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="environment_grants")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DEVELOPER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["environment", "team"], name="one_grant_per_team")]

    def __str__(self) -> str:
        return f"{self.team} as {self.role} in {self.environment}"

    def clean(self) -> None:
        if self.environment_id and self.environment.team_id is not None:
            raise ValidationError({"environment": "Roles are granted on global environments only."})

    @property
    def rank(self) -> int:
        return ROLE_RANK[self.role]


class ModelEnvironmentSettings(models.Model):
    """Per-model overrides of an environment's deployment settings (e.g. more replicas in prod)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="model_settings")
    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="environment_settings")
    deployment_settings = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["environment", "model"], name="one_override_per_model")]

    def __str__(self) -> str:
        return f"{self.model} in {self.environment}"


class FreezeWindow(models.Model):
    """No deployments into the environment between the two times (break-glass aside)."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="freeze_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=300)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="freeze_window_ends_after_it_starts"
            )
        ]

    def __str__(self) -> str:
        return f"freeze of {self.environment} {self.starts_at:%Y-%m-%d %H:%M} to {self.ends_at:%Y-%m-%d %H:%M}"
