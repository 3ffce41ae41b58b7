"""OpenID Connect providers for the sign-in tests, as real processes and servers on loopback.

`oidc_provider`: the `oidc-provider-mock` package (authlib underneath) in a subprocess, a whole
provider: discovery, sign-in page, token endpoint, user info, JWKS, RP-initiated logout. Its users
and their groups are set over HTTP (`provider.set_user("alice", groups=[...])`).

`forging_provider`: a provider of our own in front of it, for the tokens no honest provider
issues. The browser signs in at the real provider; the token request goes through this one, which
takes the real ID token and issues it again, signed with its own RSA key (published in its JWKS),
altered as the test asks: signed and then changed (tampered), issued to another client (wrong
audience), or expired an hour ago. `fault = None` re-issues it unchanged: the control that shows
that only the fault is refused.
"""

import base64
import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from accounts.sso import forget_provider
from tests.support.services import free_port, wait_until

CLIENT_ID = "slipway-tests"
CLIENT_SECRET = "slipway-tests-secret"
# The README's example mapping, and a group that gives one role in two teams.
GROUP_ROLES = [
    ("ml-platform-admins", "vision", "admin"),
    ("ml-approvers", "vision", "approver"),
    ("ml-developers", "vision", "developer"),
    ("ml-developers", "nlp", "viewer"),
]


@dataclass
class Provider:
    url: str  # the issuer

    def set_user(self, sub: str, **claims: Any) -> None:
        """Create or replace a user at the provider (their claims: email, groups, ...)."""
        response = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        response.raise_for_status()

    def authorize(self, authorization_url: str, sub: str) -> str:
        """Sign in at the provider's page as `sub`, as a person would; returns the callback URL it
        sends the browser back to (with the code and state)."""
        response = requests.post(authorization_url, data={"sub": sub}, allow_redirects=False, timeout=10)
        assert response.status_code == 302, f"the provider refused the sign-in: {response.status_code} {response.text}"
        return response.headers["Location"]


@pytest.fixture(scope="session")
def oidc_provider():
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"

    def answers():
        if process.poll() is not None:
            raise AssertionError(f"the OIDC provider exited: {process.stderr.read() if process.stderr else ''}")
        try:
            return requests.get(f"{url}/.well-known/openid-configuration", timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_until(answers, timeout=30, message="the OIDC provider to answer")
        yield Provider(url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


FAULTS = ("tampered", "wrong-audience", "expired")


class ForgingProvider:
    """A provider that relays to a real one and re-issues its ID tokens, honestly or not."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.fault: str | None = None
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "forging-provider-1"
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def discovery(self) -> dict:
        document = requests.get(f"{self.upstream}/.well-known/openid-configuration", timeout=10).json()
        # The browser signs in at the real provider; tokens, keys and user info come through here.
        document.update(
            issuer=self.url,
            token_endpoint=f"{self.url}/oauth2/token",
            jwks_uri=f"{self.url}/jwks",
            userinfo_endpoint=f"{self.url}/userinfo",
        )
        return document

    def jwks(self) -> dict:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def reissue(self, id_token: str) -> str:
        claims = jwt.decode(id_token, options={"verify_signature": False})
        claims["iss"] = self.url
        if self.fault == "wrong-audience":
            claims["aud"] = "another-application"
        if self.fault == "expired":
            now = int(time.time())
            claims.update(iat=now - 7200, exp=now - 3600)
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})
        if self.fault == "tampered":
            # A real signature over the real claims, then the claims changed: say, a promotion to admin.
            header, _, signature = token.split(".")
            claims["groups"] = [*claims.get("groups", []), "ml-platform-admins"]
            payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
            token = f"{header}.{payload}.{signature}"
        return token

    def _handler(self):
        forging = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def log_message(self, format, *args):  # quiet: the test says what went wrong
                pass

            def answer(self, status: int, body: bytes, content_type: str = "application/json"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = urlparse(self.path).path
                if path == "/.well-known/openid-configuration":
                    return self.answer(200, json.dumps(forging.discovery()).encode())
                if path == "/jwks":
                    return self.answer(200, json.dumps(forging.jwks()).encode())
                if path == "/userinfo":
                    upstream = requests.get(
                        f"{forging.upstream}/userinfo",
                        headers={"Authorization": self.headers.get("Authorization", "")},
                        timeout=10,
                    )
                    return self.answer(upstream.status_code, upstream.content)
                return self.answer(404, b"{}")

            def do_POST(self):
                if urlparse(self.path).path != "/oauth2/token":
                    return self.answer(404, b"{}")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                if self.headers.get("Authorization"):
                    headers["Authorization"] = self.headers["Authorization"]
                upstream = requests.post(
                    f"{forging.upstream}/oauth2/token", data=urlencode(form), headers=headers, timeout=10
                )
                if upstream.status_code != 200:
                    return self.answer(upstream.status_code, upstream.content)
                tokens = upstream.json()
                tokens["id_token"] = forging.reissue(tokens["id_token"])
                return self.answer(200, json.dumps(tokens).encode())

        return Handler


@pytest.fixture
def forging_provider(oidc_provider):
    with ForgingProvider(oidc_provider.url) as forging:
        yield forging


@pytest.fixture
def sso(settings, oidc_provider):
    """Slipway set up for the provider as the README says; call it again to point at another issuer."""

    def configure(issuer=oidc_provider.url):
        settings.SSO_ENABLED = True
        settings.OIDC_ISSUER = issuer
        settings.OIDC_RP_CLIENT_ID = CLIENT_ID
        settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
        settings.OIDC_PROVIDER_NAME = "Acme SSO"
        settings.OIDC_GROUP_ROLES = GROUP_ROLES
        settings.OIDC_ADMIN_GROUPS = ["slipway-site-admins"]
        forget_provider()

    configure()
    yield configure
    forget_provider()
