"""Kubeconfig text -> a private ApiClient, and a kubeconfig from an API URL, a CA and a token.

Several targets live in one worker process, so nothing here touches the client's global default
configuration. Credentials are never written to a shared path: the CA stays in memory, and client
certificate/key data (the only credentials the TLS stack needs as files) go to a private 0700
directory that is deleted when the client is closed (or the process exits).
"""

from __future__ import annotations

import base64
import binascii
import copy
import os
import shutil
import tempfile
import weakref
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.config.config_exception import ConfigException

from .base import TargetError

__all__ = ["PrivateApiClient", "kubeconfig_from_token", "load_api_client"]

USER_AGENT = "slipway-rollout/1.0"


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
    document = _parse(kubeconfig)
    document, ca_pem, secrets_dir = _externalise_credentials(document)
    configuration = client.Configuration()
    try:
        config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]  # the kubernetes client has no type hints
            document, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, KeyError, TypeError, ValueError) as error:
        if secrets_dir:
            shutil.rmtree(secrets_dir, ignore_errors=True)
        raise TargetError(f"The kubeconfig cannot be used: {error}") from error
    if ca_pem:
        configuration.ssl_ca_cert = None
        configuration.ca_cert_data = ca_pem
    # Retries are ours (with backoff and a log line); urllib3's silent ones would hide them.
    configuration.retries = False
    api = PrivateApiClient(configuration)
    api.user_agent = USER_AGENT
    if secrets_dir:
        api._secrets_dir = secrets_dir
        weakref.finalize(api, shutil.rmtree, secrets_dir, True)
    return api


def _parse(kubeconfig: str) -> dict[str, Any]:
    try:
        document = yaml.safe_load(kubeconfig)
    except yaml.YAMLError as error:
        raise TargetError(f"The kubeconfig is not valid YAML: {error}") from error
    if not isinstance(document, dict) or not document.get("clusters"):
        raise TargetError("The kubeconfig has no clusters.")
    return document


def _current(document: dict[str, Any], section: str, key: str) -> dict[str, Any] | None:
    """The cluster or user entry the current context names."""
    contexts = {c.get("name"): c.get("context") or {} for c in document.get("contexts") or []}
    context = contexts.get(document.get("current-context")) or {}
    wanted = context.get(key)
    for entry in document.get(section) or []:
        if entry.get("name") == wanted:
            return entry.get(key) or {}
    return None


def _externalise_credentials(document: dict[str, Any]) -> tuple[dict[str, Any], str | None, str | None]:
    """Take the CA out (kept in memory) and put client cert/key data into a private directory."""
    document = copy.deepcopy(document)
    cluster = _current(document, "clusters", "cluster")
    ca_pem = None
    if cluster and cluster.get("certificate-authority-data"):
        ca_pem = _decode(cluster.pop("certificate-authority-data"), "certificate-authority-data")
    user = _current(document, "users", "user")
    if not user or not (user.get("client-certificate-data") or user.get("client-key-data")):
        return document, ca_pem, None
    secrets_dir = tempfile.mkdtemp(prefix="slipway-kube-")  # mode 0700: readable by this user only
    for key, file_key in (("client-certificate-data", "client-certificate"), ("client-key-data", "client-key")):
        if user.get(key):
            path = os.path.join(secrets_dir, file_key)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(_decode(user.pop(key), key))
            user[file_key] = path
    return document, ca_pem, secrets_dir


def _decode(data: str, key: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode()
    except (binascii.Error, ValueError) as error:
        raise TargetError(f"The kubeconfig's {key} is not valid base64.") from error
