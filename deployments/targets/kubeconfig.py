"""Kubeconfig text -> a private ApiClient, and a kubeconfig from an API URL, a CA and a token.

A kubeconfig is data supplied by a team admin, never instructions to the platform. The client
library's own loader runs `exec` plugins and `auth-provider` helpers and reads `tokenFile`,
`certificate-authority`, `client-certificate` and `client-key` paths on the platform's disk, so
it is never used: `parse_kubeconfig` accepts only inline credentials (an allow-list of fields) and
the client's Configuration is built from those fields alone.

Several targets live in one worker process, so nothing here touches the client's global default
configuration. Credentials are never written to a shared path: the CA stays in memory, and client
certificate/key data (the only credentials the TLS stack needs as files) go to a private 0700
directory that is deleted when the client is closed (or the process exits).
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client

from .base import TargetError

__all__ = [
    "KubeCredentials",
    "KubeconfigError",
    "PrivateApiClient",
    "kubeconfig_from_token",
    "load_api_client",
    "parse_kubeconfig",
]

USER_AGENT = "slipway-rollout/1.0"

# What a kubeconfig may hold. Anything else (exec, auth-provider, tokenFile, every *file* path,
# proxy-url, impersonation) is refused with the field's path, never ignored: a reader must see that
# the document was not used as written.
_TOP_LEVEL = {"apiVersion", "kind", "clusters", "contexts", "users", "current-context", "preferences", "extensions"}
_CLUSTER = {"server", "certificate-authority-data", "insecure-skip-tls-verify", "tls-server-name", "extensions"}
_USER = {"token", "client-certificate-data", "client-key-data", "username", "password", "extensions"}
_CONTEXT = {"cluster", "user", "namespace", "extensions"}
_ENTRY = {"name", "cluster", "user", "context"}
_INLINE = "a kubeconfig may carry only inline credentials (token, client-certificate-data, client-key-data)"


class KubeconfigError(TargetError):
    """The kubeconfig is refused; `field` is the path of the offending field (users[0].user.exec)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class KubeCredentials:
    """The validated content of a kubeconfig's current context: everything a connection needs."""

    server: str
    ca_pem: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    token: str | None = None
    client_certificate: str | None = None
    client_key: str | None = None
    username: str | None = None
    password: str | None = None
    namespace: str | None = None


def kubeconfig_from_token(api_url: str, ca_cert_pem: str, token: str, namespace: str) -> str:
    """A kubeconfig (YAML text) for a ServiceAccount token; an empty CA means the system's trust store."""
    cluster: dict[str, Any] = {"server": api_url.rstrip("/")}
    if ca_cert_pem and ca_cert_pem.strip():
        cluster["certificate-authority-data"] = base64.b64encode(ca_cert_pem.strip().encode() + b"\n").decode()
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "slipway-target", "cluster": cluster}],
        "users": [{"name": "slipway", "user": {"token": token}}],
        "contexts": [
            {
                "name": "slipway-target",
                "context": {"cluster": "slipway-target", "user": "slipway", "namespace": namespace},
            }
        ],
        "current-context": "slipway-target",
        "preferences": {},
    }
    return yaml.safe_dump(document, sort_keys=False)


def parse_kubeconfig(kubeconfig: str) -> KubeCredentials:
    """The credentials of the current context, or KubeconfigError naming the first refused field.

    Every entry is checked, not only the current one: a stored kubeconfig must be safe whichever
    context someone selects later."""
    try:
        # libyaml's safe loader when there is one: the same documents, parsed ten times faster (each rollout
        # parses its environment's kubeconfig, certificates and all).
        document = yaml.load(kubeconfig, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
    except yaml.YAMLError as error:
        raise KubeconfigError("kubeconfig", f"The kubeconfig is not valid YAML: {error}") from error
    if not isinstance(document, dict) or not document.get("clusters"):
        raise KubeconfigError("clusters", "The kubeconfig has no clusters.")
    _only(document, _TOP_LEVEL, "")
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    for section, key, allowed in (("clusters", "cluster", _CLUSTER), ("users", "user", _USER),
                                  ("contexts", "context", _CONTEXT)):  # fmt: skip
        entries[section] = {}
        items = document.get(section) or []
        if not isinstance(items, list):
            raise KubeconfigError(section, f"The kubeconfig's {section} must be a list.")
        for index, entry in enumerate(items):
            where = f"{section}[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get(key) or {}, dict):
                raise KubeconfigError(where, f"The kubeconfig's {where} is not a mapping.")
            _only(entry, _ENTRY, where)
            body = entry.get(key) or {}
            _only(body, allowed, f"{where}.{key}")
            entries[section][str(entry.get("name"))] = body
    context = entries["contexts"].get(str(document.get("current-context")))
    if context is None:
        raise KubeconfigError("current-context", "The kubeconfig's current-context names no context.")
    cluster = entries["clusters"].get(str(context.get("cluster")))
    if cluster is None or not isinstance(cluster.get("server"), str) or not cluster["server"]:
        raise KubeconfigError("clusters", "The current context's cluster has no server address.")
    user: dict[str, Any] = {}
    if context.get("user"):
        if str(context["user"]) not in entries["users"]:
            raise KubeconfigError("contexts", f"The current context names user '{context['user']}', not defined.")
        user = entries["users"][str(context["user"])]
    return KubeCredentials(
        server=cluster["server"].rstrip("/"),
        ca_pem=_decode(cluster["certificate-authority-data"], "certificate-authority-data")
        if cluster.get("certificate-authority-data")
        else None,
        insecure_skip_tls_verify=cluster.get("insecure-skip-tls-verify") is True,
        tls_server_name=_text(cluster, "tls-server-name"),
        token=_text(user, "token"),
        client_certificate=_decode(user["client-certificate-data"], "client-certificate-data")
        if user.get("client-certificate-data")
        else None,
        client_key=_decode(user["client-key-data"], "client-key-data") if user.get("client-key-data") else None,
        username=_text(user, "username"),
        password=_text(user, "password"),
        namespace=_text(context, "namespace"),
    )


class PrivateApiClient(client.ApiClient):
    """An ApiClient that deletes its private credential files when closed."""

    _secrets_dir: str | None = None

    def close(self) -> None:
        super().close()  # type: ignore[no-untyped-call]  # the kubernetes client has no type hints
        if self._secrets_dir:
            shutil.rmtree(self._secrets_dir, ignore_errors=True)
            self._secrets_dir = None


def load_api_client(kubeconfig: str) -> PrivateApiClient:
    """An ApiClient for the kubeconfig's current context, with its own Configuration."""
    credentials = parse_kubeconfig(kubeconfig)
    configuration = client.Configuration()
    configuration.host = credentials.server
    configuration.ssl_ca_cert = None
    if credentials.ca_pem:
        configuration.ca_cert_data = credentials.ca_pem
    configuration.verify_ssl = not credentials.insecure_skip_tls_verify
    if credentials.tls_server_name:
        configuration.tls_server_name = credentials.tls_server_name
    if credentials.token:
        configuration.api_key["BearerToken"] = f"Bearer {credentials.token}"
    elif credentials.username is not None and credentials.password is not None:
        pair = f"{credentials.username}:{credentials.password}".encode()
        configuration.api_key["BearerToken"] = "Basic " + base64.b64encode(pair).decode()
    # Retries are ours (with backoff and a log line); urllib3's silent ones would hide them.
    configuration.retries = False
    secrets_dir = None
    if credentials.client_certificate or credentials.client_key:
        secrets_dir = tempfile.mkdtemp(prefix="slipway-kube-")  # mode 0700: readable by this user only
        configuration.cert_file = _private_file(secrets_dir, "client-certificate", credentials.client_certificate)
        configuration.key_file = _private_file(secrets_dir, "client-key", credentials.client_key)
    api = PrivateApiClient(configuration)
    api.user_agent = USER_AGENT
    if secrets_dir:
        api._secrets_dir = secrets_dir
        weakref.finalize(api, shutil.rmtree, secrets_dir, True)
    return api


def _only(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise KubeconfigError(path, f"The kubeconfig's {path} is not accepted: {_INLINE}.")


def _text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise KubeconfigError(key, f"The kubeconfig's {key} must be text.")
    return value


def _private_file(directory: str, name: str, content: str | None) -> str | None:
    if content is None:
        return None
    path = os.path.join(directory, name)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(content)
    return path


def _decode(data: object, key: str) -> str:
    try:
        if not isinstance(data, str):
            raise ValueError(key)
        return base64.b64decode(data, validate=True).decode()
    except (binascii.Error, ValueError) as error:
        raise KubeconfigError(key, f"The kubeconfig's {key} is not valid base64.") from error
