"""The README's single sign-on settings, run as a reader would paste them: they must start Slipway
with the mapping they show, and the callback URL they name must be the one Slipway serves."""

import json
import os
import re
import subprocess
import sys

from django.urls import reverse

from tests.support.readme import README, code_block

SHOW_SETTINGS = """
import json, django
django.setup()  # the accounts app checks the roles of the mapping here
from django.conf import settings
print(json.dumps({name: getattr(settings, name) for name in (
    "SSO_ENABLED", "OIDC_ISSUER", "OIDC_RP_CLIENT_ID", "OIDC_RP_CLIENT_SECRET", "OIDC_RP_SCOPES",
    "OIDC_PROVIDER_NAME", "OIDC_GROUP_ROLES", "OIDC_ADMIN_GROUPS", "LOCAL_LOGIN")}))
"""


def test_the_readme_settings_start_slipway_with_the_mapping_they_show(tmp_path):
    settings_block = code_block("SLIPWAY_OIDC_GROUP_ROLES")
    secret = tmp_path / "oidc-client-secret"
    secret.write_text("s3cret-from-a-file\n")
    script = settings_block.replace("/run/secrets/oidc-client-secret", str(secret))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SLIPWAY_")}
    environment.update(DJANGO_SETTINGS_MODULE="config.settings", SLIPWAY_SECRET_KEY="readme-test-key")
    shown = subprocess.run(
        ["bash", "-c", f'set -a\n{script}\nset +a\nexec "{sys.executable}" -c "$0"', SHOW_SETTINGS],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == {
        "SSO_ENABLED": True,
        "OIDC_ISSUER": "https://login.example.com/realms/acme",
        "OIDC_RP_CLIENT_ID": "slipway",
        "OIDC_RP_CLIENT_SECRET": "s3cret-from-a-file",
        "OIDC_RP_SCOPES": "openid email profile groups",
        "OIDC_PROVIDER_NAME": "Acme SSO",
        "OIDC_GROUP_ROLES": [
            ["ml-platform-admins", "vision", "admin"],
            ["ml-approvers", "vision", "approver"],
            ["ml-team", "vision", "developer"],
        ],
        "OIDC_ADMIN_GROUPS": ["slipway-site-admins"],
        "LOCAL_LOGIN": False,
    }


def test_the_callback_url_the_readme_names_is_the_one_slipway_serves():
    named = set(re.findall(r"https://slipway\.example\.com(/[\w/-]*)", README.read_text()))
    assert {"/oidc/callback/", "/login/"} <= named
    assert reverse("sso-callback") == "/oidc/callback/" and reverse("login") == "/login/"
