"""Environments and their freeze windows: who may change them, and how to reach their target (a cluster
or a Docker host)."""

import contextlib
import ipaddress
import logging
import posixpath
import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Role, Team
from accounts.permissions import Action, Actor, decide, require
from audit.services import model_snapshot, record
from deployments import deployment_settings, targets
from deployments.models import Environment, EnvironmentGrant, FreezeWindow, ModelEnvironmentSettings, TargetKind
from deployments.outbound import OutboundRefused
from deployments.selectors.installation import installation_id
from deployments.selectors.registries import registry_for
from deployments.targets.docker_tls import is_loopback
from registry.models import RegisteredModel

logger = logging.getLogger(__name__)

SECRET_FIELDS = ("kube_token", "kubeconfig", "docker_tls_ca", "docker_tls_cert", "docker_tls_key", "docker_ssh_key")
DOCKER_SCHEMES = ("unix", "tcp", "ssh")
# What each kind of Docker address signs in with: left behind when the environment moves to another kind.
CREDENTIALS_OF_SCHEME = {
    "ssh": ("docker_ssh_key", "docker_ssh_host_key"),
    "tcp": ("docker_tls_ca", "docker_tls_cert", "docker_tls_key"),
}
SSH_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
AUDITED_FIELDS = (
    "name",
    "description",
    "position",
    "protected",
    "auto_rollback",
    "required_approvals",
    "approver_groups",
    "reject_requires_comment",
    "approval_expiry_hours",
    "requires_previous_stage",
    "block_severity",
    "four_eyes",
    "rollback_during_freeze",
    "target",
    "namespace",
    "kube_api_url",
    "docker_url",
    "bind_address",
    "docker_ssh_host_key",
    "deployment_settings",
    "allowed_secret_refs",
)


def require_environment_admin(actor: Actor, environment: Environment) -> None:
    """A team's environment is administered by the team's admins; a global one by site administrators."""
    require(actor, Action.MANAGE_TEAM, environment)


def clean_settings(data, *, environment: Environment, base: dict | None = None) -> dict:
    """deployments.deployment_settings.clean, with its refusal as a form and API error."""
    try:
        return deployment_settings.clean(data, base=base, allowed_secret_refs=environment.allowed_secret_refs)
    except deployment_settings.SettingError as error:
        raise ValidationError({"deployment_settings": str(error)}) from None


def environment_save(
    *,
    actor: Actor,
    environment: Environment,
    secrets: dict | None = None,
    approver_groups=None,
    grants: list[tuple[Team, str]] | None = None,
) -> Environment:
    """Create or update. Secrets (token, kubeconfig) are only replaced when given: they are never
    shown back, so a form cannot send them again. `grants`: the (team, role) pairs a global environment
    grants, replacing those it had (None: unchanged)."""
    require_environment_admin(actor, environment)
    if grants is not None:
        _check_grants(environment, grants)
    for field, value in (secrets or {}).items():
        if field not in SECRET_FIELDS:
            raise ValidationError({field: "Not a secret field."})
        if value:
            setattr(environment, field, value)
    if secrets and secrets.get("kubeconfig"):
        _check_kubeconfig(secrets["kubeconfig"])
    try:
        environment.allowed_secret_refs = deployment_settings.clean_secret_names(environment.allowed_secret_refs)
    except deployment_settings.SettingError as error:
        raise ValidationError({"allowed_secret_refs": str(error)}) from None
    environment.deployment_settings = clean_settings(environment.deployment_settings, environment=environment)
    created = environment.pk is None
    stored = None if created else Environment.objects.get(pk=environment.pk)
    _forget_host_key_of_another_host(environment, stored)
    cleared = _forget_credentials_of_another_scheme(environment, stored, secrets or {})
    _check_target(environment, actor=actor, stored=stored)
    _check_name_not_shadowed(environment)
    environment.full_clean(exclude=list(SECRET_FIELDS), validate_unique=False, validate_constraints=False)
    before = {} if stored is None else _snapshot(stored)
    try:
        with transaction.atomic():
            environment.save()
            if approver_groups is not None:
                environment.approver_groups.set(approver_groups)
            if grants is not None:
                _replace_grants(environment, grants)
            record(
                actor=actor,
                action="environment.create" if created else "environment.update",
                obj=environment,
                team_id=environment.team_id,
                environment=environment.name,
                before=before,
                after={
                    **_snapshot(environment),
                    "credentials_changed": bool(cleared) or (any(secrets.values()) if secrets else False),
                },
            )
    except IntegrityError:
        raise ValidationError({"name": f"There is already an environment named '{environment.name}' here."}) from None
    return environment


def _check_name_not_shadowed(environment: Environment) -> None:
    """A team environment never takes a global environment's name, nor the reverse: a script that
    finds `prod` by name (the README's, the CLI's) must not reach an unprotected namesake."""
    others = Environment.objects.filter(name=environment.name).exclude(pk=environment.pk)
    if environment.team_id is None:
        team = others.filter(team__isnull=False).values_list("team__slug", flat=True).first()
        if team is not None:
            raise ValidationError(
                {"name": f"Team '{team}' has an environment named '{environment.name}': choose another."}
            )
    elif others.filter(team__isnull=True).exists():
        raise ValidationError(
            {"name": f"'{environment.name}' is the name of a global environment: choose another for the team's."}
        )


def _snapshot(environment: Environment) -> dict:
    grants = environment.grants.select_related("team").order_by("team__slug") if environment.pk else []
    return {
        **model_snapshot(environment, AUDITED_FIELDS),
        "grants": {grant.team.slug: grant.role for grant in grants},
    }


def _check_grants(environment: Environment, grants: list[tuple[Team, str]]) -> None:
    if grants and environment.team_id is not None:
        raise ValidationError(
            {"grants": "Roles are granted on global environments only: a team's environment takes its own team."}
        )
    seen: set[int] = set()
    for team, role in grants:
        if role not in Role.values:
            raise ValidationError({"grants": f"'{role}' is not a role; use one of {', '.join(Role.values)}."})
        if team.pk in seen:
            raise ValidationError({"grants": f"Team '{team.slug}' is granted a role twice; give it one."})
        seen.add(team.pk)


def _replace_grants(environment: Environment, grants: list[tuple[Team, str]]) -> None:
    environment.grants.exclude(team__in=[team for team, _ in grants]).delete()
    for team, role in grants:
        EnvironmentGrant.objects.update_or_create(environment=environment, team=team, defaults={"role": role})


def _check_target(environment: Environment, *, actor: Actor, stored: Environment | None) -> None:
    if environment.target == TargetKind.KUBERNETES:
        if not environment.namespace:
            raise ValidationError({"namespace": "A Kubernetes environment needs a namespace."})
        if not environment.kubeconfig and not (environment.kube_api_url and environment.kube_token):
            raise ValidationError({"kubeconfig": "Upload a kubeconfig, or give the API URL with a token."})
    elif not environment.docker_url:
        raise ValidationError({"docker_url": "Give the Docker engine's address, e.g. unix:///var/run/docker.sock."})
    else:
        _check_docker_host(environment)
        # Checked when the address is new: an environment a site administrator gave this engine keeps it.
        if (
            stored is None
            or stored.target != TargetKind.DOCKER
            or _engine_address(stored.docker_url) != _engine_address(environment.docker_url)
        ):
            _check_local_engine(environment, actor)
    try:
        check_target_address(environment, saving=True)
    except OutboundRefused as error:
        raise ValidationError({_address_field(environment): str(error)}) from None


def _forget_host_key_of_another_host(environment: Environment, stored: Environment | None) -> None:
    """A host key recorded for one ssh:// address says nothing about another: moved to another host
    without a new key, the environment records that host's key on its next connection."""
    if stored is None or environment.docker_ssh_host_key != stored.docker_ssh_host_key:
        return
    if _ssh_address(environment.docker_url) != _ssh_address(stored.docker_url):
        environment.docker_ssh_host_key = ""


def _forget_credentials_of_another_scheme(environment: Environment, stored: Environment | None, secrets: dict) -> list:
    """Moved from an ssh:// host to another kind of address, the SSH key and host key are forgotten; from
    a tcp:// engine, its TLS material (unless given anew, which is then refused beside the field): they
    can be used nowhere else, and would otherwise stay stored for ever. The fields cleared."""
    if stored is None or environment.target != TargetKind.DOCKER:
        return []
    before, now = _scheme(stored.docker_url), _scheme(environment.docker_url)
    if before == now:
        return []
    cleared = []
    for field in CREDENTIALS_OF_SCHEME.get(before, ()):
        given_anew = secrets.get(field) or (
            field not in SECRET_FIELDS and getattr(environment, field) != getattr(stored, field)
        )
        if getattr(environment, field) and not given_anew:
            setattr(environment, field, "")
            cleared.append(field)
    return cleared


def _scheme(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else ""


def _engine_address(url: str) -> tuple:
    """A Docker address as compared with another: a unix socket by its normalised path (unix:///var/run/../run/
    docker.sock is /run/docker.sock's neighbour, not a new place), an engine on the network by host and port."""
    scheme = _scheme(url)
    if scheme in ("unix", "npipe"):
        path = url.split("://", 1)[1]
        return (scheme, posixpath.normpath("/" + path.lstrip("/")))
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").rstrip("."), parts.port
    except ValueError:
        return (scheme, url)
    with contextlib.suppress(ValueError):
        host = str(ipaddress.ip_address(host))
    return ("tcp" if scheme in ("tcp", "http", "https") else scheme, host, port)


def _check_local_engine(environment: Environment, actor: Actor) -> None:
    """This machine's engine (any unix:// socket, a tcp:// engine on loopback without TLS, or the engine the
    platform builds on) runs the platform's own containers: whoever deploys there reaches them. It is a
    global resource, so the policy leaves it to whoever administers global objects (site administrators)."""
    address = _engine_address(environment.docker_url)
    local = (
        address[0] in ("unix", "npipe")
        or address == _engine_address(settings.DOCKER_HOST)
        or (address[0] == "tcp" and docker_tls_of(environment) is None)
    )
    if local and not decide(actor, Action.MANAGE_TEAM, Environment(team=None)):
        raise ValidationError(
            {
                "docker_url": f"{environment.docker_url} is this machine's own Docker engine, which only site "
                "administrators may give an environment: use a remote host, tcp://host:2376 with TLS or "
                "ssh://user@host."
            }
        )


def _ssh_address(url: str) -> tuple[str, int | None] | None:
    if not url.lower().startswith("ssh://"):
        return None
    try:
        parts = urlsplit(url)
        return (parts.hostname or "", parts.port)
    except ValueError:
        return None


def docker_ssh_of(environment: Environment) -> "targets.DockerSSH | None":
    if not environment.docker_url.lower().startswith("ssh://"):
        return None

    def record_host_key(seen: str) -> str:
        recorded = docker_ssh_host_key_record(environment=environment, host_key=seen)
        environment.docker_ssh_host_key = recorded
        return recorded

    return targets.DockerSSH(
        key=environment.docker_ssh_key, host_key=environment.docker_ssh_host_key, record_host_key=record_host_key
    )


def docker_ssh_host_key_record(*, environment: Environment, host_key: str) -> str:
    """Trust on first use: store the key an ssh:// host presented unless a key is stored already; the
    key stored now (another connection may have recorded one first: the caller compares)."""
    with transaction.atomic():
        if Environment.objects.filter(pk=environment.pk, docker_ssh_host_key="").update(docker_ssh_host_key=host_key):
            record(
                actor=None,
                action="environment.ssh_host_key_recorded",
                obj=environment,
                team_id=environment.team_id,
                environment=environment.name,
                after={"docker_url": environment.docker_url, "docker_ssh_host_key": host_key},
            )
            logger.info(
                "environment %s: recorded the host key of %s on first use", environment.pk, environment.docker_url
            )
    return Environment.objects.values_list("docker_ssh_host_key", flat=True).get(pk=environment.pk)


def docker_tls_of(environment: Environment) -> "targets.DockerTLS | None":
    if not (environment.docker_tls_ca or environment.docker_tls_cert or environment.docker_tls_key):
        return None
    return targets.DockerTLS(
        ca=environment.docker_tls_ca, cert=environment.docker_tls_cert, key=environment.docker_tls_key
    )


def _check_docker_host(environment: Environment) -> None:
    url = environment.docker_url
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in DOCKER_SCHEMES:
        raise ValidationError(
            {"docker_url": "Use unix:///var/run/docker.sock, tcp://host:2376 (with TLS) or ssh://user@host."}
        )
    if scheme != "ssh" and (environment.docker_ssh_key or environment.docker_ssh_host_key):
        field = "docker_ssh_key" if environment.docker_ssh_key else "docker_ssh_host_key"
        raise ValidationError({field: "SSH keys are for ssh:// hosts only."})
    tls = docker_tls_of(environment)
    if tls is not None and scheme != "tcp":
        raise ValidationError({"docker_tls_cert": "TLS client certificates are for tcp:// engines only."})
    if scheme == "ssh":
        _check_ssh(environment)
    if tls is not None:
        try:
            targets.validate_tls(tls)
        except targets.TargetError as error:
            field, _, reason = str(error).partition(": ")
            raise ValidationError({field: reason}) from None
    host = urlsplit(url).hostname or ""
    if scheme == "tcp" and tls is None and not is_loopback(host):
        raise ValidationError(
            {
                "docker_url": "A tcp:// engine needs TLS client credentials (docker_tls_ca, docker_tls_cert, "
                "docker_tls_key): without them anyone who reaches its port controls the host."
            }
        )
    if scheme != "unix" and not is_loopback(host) and is_loopback(environment.bind_address):
        raise ValidationError(
            {
                "bind_address": f"Ports published on the loopback of {host} cannot be reached from here: "
                "bind them to 0.0.0.0 or to an address of that host."
            }
        )


def _check_ssh(environment: Environment) -> None:
    reason = ssh_url_error(environment.docker_url)
    if reason:
        raise ValidationError({"docker_url": reason})
    if not environment.docker_ssh_key:
        raise ValidationError(
            {"docker_ssh_key": "An ssh:// host needs Slipway's private key (the worker's own ~/.ssh is never used)."}
        )
    try:
        targets.validate_ssh(targets.DockerSSH(key=environment.docker_ssh_key))
        if environment.docker_ssh_host_key:
            environment.docker_ssh_host_key = targets.parse_host_key(environment.docker_ssh_host_key)
    except targets.TargetError as error:
        field, _, reason = str(error).partition(": ")
        raise ValidationError({field: reason}) from None


def ssh_url_error(url: str) -> str:
    """Why an ssh:// address is not ssh://user@host[:port] with a plain user name, a host name or IP address
    and a port in range ("" when it is): the host and user reach an ssh command line."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "The port must be a number from 1 to 65535: ssh://user@host:port."
    if not parts.username or not parts.hostname:
        return "Name the user and the host: ssh://user@host or ssh://user@host:port."
    if parts.password is not None:
        return "Give no password: Slipway signs in with its key (docker_ssh_key)."
    if not SSH_USER.match(parts.username):
        return f"'{parts.username}' is not a user name: letters, digits, '.', '_' and '-', at most 32."
    if port == 0:
        return "The port must be a number from 1 to 65535: ssh://user@host:port."
    host = parts.netloc.rpartition("@")[2]
    host = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] if port else host
    if not _is_host_name_or_address(host):
        return f"'{host}' is not a host name or an IP address."
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return "Give only ssh://user@host or ssh://user@host:port, with nothing after the host."
    return ""


def _is_host_name_or_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(HOST_LABEL.match(label) for label in labels)


def _address_field(environment: Environment) -> str:
    if environment.target != TargetKind.KUBERNETES:
        return "docker_url"
    return "kubeconfig" if environment.kubeconfig else "kube_api_url"


def check_target_address(environment: Environment, *, saving: bool = False) -> None:
    """The cluster's API server or the Docker host must be somewhere the platform may connect."""
    policy = settings.OUTBOUND_POLICY
    if environment.target != TargetKind.KUBERNETES:
        policy.check_docker_url(environment.docker_url, unresolved_ok=saving)
        return
    server = environment.kube_api_url
    if environment.kubeconfig:
        try:
            server = targets.parse_kubeconfig(environment.kubeconfig).server
        except targets.KubeconfigError:
            return  # refused with its own reason where the kubeconfig is read
    policy.check_url(server, "Kubernetes API server", unresolved_ok=saving)


def _check_kubeconfig(kubeconfig: str) -> None:
    """Refused before it is stored: a kubeconfig may only carry inline credentials (see targets.kubeconfig)."""
    try:
        targets.parse_kubeconfig(kubeconfig)
    except targets.KubeconfigError as error:
        raise ValidationError({"kubeconfig": str(error)}) from None


def model_settings_save(
    *, actor: Actor, environment: Environment, model: RegisteredModel, deployment_settings: dict
) -> ModelEnvironmentSettings:
    # The environment's settings and secrets go into the model's container: the policy checks that the
    # environment takes this team's models (a team's environment takes only its own team's).
    require(actor, Action.MANAGE_TEAM, model, environment=environment)
    # Checked with the environment's own settings, so a request never exceeds the limit it inherits.
    cleaned = clean_settings(deployment_settings, environment=environment, base=environment.settings_for(model))
    with transaction.atomic():
        override, _ = ModelEnvironmentSettings.objects.update_or_create(
            environment=environment, model=model, defaults={"deployment_settings": cleaned}
        )
        record(
            actor=actor,
            action="environment.model_settings",
            obj=override,
            team_id=model.team_id,
            environment=environment.name,
            after=cleaned,
        )
    return override


def identity_for(environment: Environment, model: RegisteredModel) -> "targets.Identity":
    """Whose objects a rollout of the model to the environment creates, finds and retires."""
    return targets.Identity(
        installation=installation_id(),
        environment=environment.name,
        environment_id=environment.pk,
        team=model.team.slug,
        model=model.name,
    )


def target_for(environment: Environment, *, ready_timeout: float | None = None, quick: bool = False):
    """The object that talks to the environment's cluster or Docker host. `ready_timeout`: how long a
    new container may take to answer ready on a Docker host (a cluster has progressDeadlineSeconds).
    `quick`: short timeouts and no retries, for a look that is repeated anyway (the drift check)."""
    try:
        check_target_address(environment)  # again: the allowed networks may have changed since it was saved
    except OutboundRefused as error:
        raise targets.TargetError(str(error)) from None
    if environment.target == TargetKind.KUBERNETES:
        kubeconfig = environment.kubeconfig or targets.kubeconfig_from_token(
            environment.kube_api_url, environment.kube_ca_cert, environment.kube_token, environment.namespace
        )
        if quick:
            return targets.KubernetesTarget(
                kubeconfig, environment.namespace, request_timeout=settings.DRIFT_REQUEST_TIMEOUT, retries=0
            )
        return targets.KubernetesTarget(kubeconfig, environment.namespace)
    registry = registry_for(environment.team)
    return targets.DockerHostTarget(
        environment.docker_url,
        bind_address=environment.bind_address,
        registry_auth=registry.auth_config if registry else None,
        ready_timeout=ready_timeout or environment.settings_for(None)["progress_deadline_seconds"],
        tls=docker_tls_of(environment),
        ssh=docker_ssh_of(environment),
        **({"request_timeout": settings.DRIFT_REQUEST_TIMEOUT} if quick else {}),
    )


def environment_check(*, actor: Actor, environment: Environment) -> dict:
    """Test the connection: the server's version, the namespace, and what the credentials may do."""
    require_environment_admin(actor, environment)
    try:
        report = target_for(environment).check()
    except (targets.TargetError, targets.TransientTargetError) as exc:
        report = {"ok": False, "message": str(exc)}
    if not report.get("ok") and not report.get("server_version") and report.get("message"):
        # What the far side said stays in the log: shown back, it would let the page read any
        # internal service the address points at. The sentence before the first ": " is ours.
        logger.info("environment %s check failed: %s", environment.pk, report["message"])
        report["message"] = own_summary(report["message"])
    return report


def own_summary(message: str) -> str:
    return message.split(": ", 1)[0].rstrip(".") + "."


def environment_delete(*, actor: Actor, environment: Environment) -> None:
    require_environment_admin(actor, environment)
    if environment.rollouts.exists():
        raise ValidationError({"environment": "It has a deployment history, which is kept; it cannot be deleted."})
    with transaction.atomic():
        record(
            actor=actor,
            action="environment.delete",
            obj=environment,
            team_id=environment.team_id,
            environment=environment.name,
            before=_snapshot(environment),
        )
        environment.delete()


def freeze_window_create(*, actor: Actor, environment: Environment, starts_at, ends_at, reason: str) -> FreezeWindow:
    require_environment_admin(actor, environment)
    if not reason.strip():
        raise ValidationError({"reason": "Say why deployments are frozen."})
    with transaction.atomic():
        window = FreezeWindow.objects.create(
            environment=environment, starts_at=starts_at, ends_at=ends_at, reason=reason.strip(), created_by=actor.user
        )
        record(
            actor=actor,
            action="freeze.create",
            obj=window,
            team_id=environment.team_id,
            environment=environment.name,
            after={"starts_at": starts_at, "ends_at": ends_at, "reason": reason},
        )
    return window


def freeze_window_delete(*, actor: Actor, window: FreezeWindow) -> None:
    require_environment_admin(actor, window.environment)
    with transaction.atomic():
        record(
            actor=actor,
            action="freeze.delete",
            obj=window,
            team_id=window.environment.team_id,
            environment=window.environment.name,
            before={"starts_at": window.starts_at, "ends_at": window.ends_at, "reason": window.reason},
        )
        window.delete()
