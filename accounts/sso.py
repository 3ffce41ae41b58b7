"""Signing in: with a password (which may be turned off), or through an OpenID Connect provider.

mozilla-django-oidc runs the authorization code flow (state, nonce, PKCE). What it leaves to us,
and this module does: find the provider's endpoints from its discovery document; check the ID
token fully (signature, issuer, audience, expiry), which the library does only in part; know a
person by the issuer and subject of their token; sync their memberships from the provider's groups.
"""

import logging
import re
import time
from typing import Any
from urllib.parse import urlencode

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.db import IntegrityError, transaction
from django.utils import timezone
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from accounts import throttle
from accounts.models import SsoIdentity
from accounts.permissions import Actor
from accounts.services import memberships_sync_from_sso, site_admin_sync_from_sso
from audit.services import record

logger = logging.getLogger(__name__)

DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
DISCOVERY_TTL = 300  # seconds; a provider rotating its keys is seen through the JWKS, fetched each sign-in
LEEWAY = 60  # seconds of clock difference tolerated between the provider and us
SIGN_IN_ATTEMPTS = 3  # of making the user, its identity and memberships, when a concurrent sign-in races
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}


class SsoUnavailable(Exception):
    """The provider could not be reached or described itself wrongly: nobody is at fault but the setup."""


class SignInRefused(Exception):
    """The provider's answer must not sign anyone in; the message says why, for the person and the log.

    Not a PermissionDenied: Django's authenticate() would swallow that and show nothing.
    """


def discovery_url() -> str:
    issuer = settings.OIDC_ISSUER.rstrip("/")
    return issuer if issuer.endswith(DISCOVERY_SUFFIX) else issuer + DISCOVERY_SUFFIX


def provider() -> dict[str, Any]:
    """The provider's discovery document, fetched at most every DISCOVERY_TTL seconds per process."""
    url = discovery_url()
    cached = _discovered.get(url)
    if cached and cached[0] > time.monotonic():
        return cached[1]
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise SsoUnavailable(
            f"The identity provider's discovery document at {url} could not be read: {error}"
        ) from None
    missing = [key for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri") if key not in document]
    if missing:
        raise SsoUnavailable(f"The identity provider's discovery document at {url} lacks {', '.join(missing)}")
    configured = settings.OIDC_ISSUER.rstrip("/")
    if not configured.endswith(DISCOVERY_SUFFIX) and document["issuer"].rstrip("/") != configured:
        # OpenID Connect Discovery 1.0, section 4.3: the issuer must be the one asked for.
        raise SsoUnavailable(f"The discovery document at {url} names issuer {document['issuer']}, not {configured}")
    _discovered[url] = (time.monotonic() + DISCOVERY_TTL, document)
    return document


def forget_provider() -> None:
    _discovered.clear()


def end_session_url(*, id_token: str, post_logout_redirect_uri: str) -> str | None:
    """Where to send the browser so that the provider's session ends too (RP-initiated logout),
    or None when the provider does not offer it."""
    try:
        endpoint = provider().get("end_session_endpoint")
    except SsoUnavailable as error:
        logger.warning("signing out of Slipway only: %s", error)
        return None
    if not endpoint:
        return None
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": post_logout_redirect_uri,
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


class LocalPasswordBackend(ModelBackend):
    """Passwords, unless SLIPWAY_LOCAL_LOGIN=false; then only the break-glass site admins keep theirs.

    Every password form (the sign-in page, the admin site's) comes through here, so this is the one
    place where the rule is enforced.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        if throttle.refusal(request, username):
            return None  # whichever form asked: the sign-in page and the admin's say why first
        if settings.LOCAL_LOGIN:
            return super().authenticate(request, username=username, password=password, **kwargs)
        if username not in settings.BREAK_GLASS_USERS:
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or not user.is_superuser:
            return None
        seen_from = Actor.from_request(request) if request is not None else Actor(user=user)
        record(
            actor=Actor(user=user, ip_address=seen_from.ip_address, user_agent=seen_from.user_agent),
            action="user.sign_in",
            obj=user,
            reason="break-glass password sign-in while local login is off",
            flagged=True,
        )
        return user


class OidcBackend(OIDCAuthenticationBackend):
    """The authorization code flow of mozilla-django-oidc, with endpoints from discovery and a full
    check of the ID token."""

    def __init__(self, *args, **kwargs):
        # Django makes a backend for every request that has a session: no discovery here, only
        # in authenticate(), when someone actually comes back from the provider.
        self.UserModel = get_user_model()
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    @property
    def OIDC_RP_CLIENT_ID(self) -> str:  # the names mozilla-django-oidc reads
        return settings.OIDC_RP_CLIENT_ID

    @property
    def OIDC_RP_CLIENT_SECRET(self) -> str:
        return settings.OIDC_RP_CLIENT_SECRET

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:
        return provider()["token_endpoint"]

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str | None:
        return provider().get("userinfo_endpoint")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:
        return provider()["jwks_uri"]

    def authenticate(self, request, **kwargs):
        if not settings.SSO_ENABLED or "password" in kwargs:
            return None
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        """Signature, issuer, audience, expiry and nonce; mozilla-django-oidc checks neither the
        audience nor the issuer, so a token issued to another application would pass there."""
        if not token:
            raise SignInRefused("The identity provider sent no ID token.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise SignInRefused("The identity provider's ID token is not a signed token (JWS).") from None
        allowed = provider().get("id_token_signing_alg_values_supported") or [self.OIDC_RP_SIGN_ALGO]
        if header.get("alg") not in allowed or header.get("alg") in {None, "none"} or header["alg"].startswith("HS"):
            raise SignInRefused(f"The ID token is signed with {header.get('alg')!r}, which this provider does not use.")
        key = self._signing_key(header)
        issuer = provider()["issuer"]
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[header["alg"]],
                audience=settings.OIDC_RP_CLIENT_ID,
                issuer=issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise SignInRefused(
                "The ID token has expired. Sign in again; if it keeps happening, check the clocks."
            ) from None
        except jwt.InvalidAudienceError:
            raise SignInRefused(
                f"The ID token was issued to another application, not to this Slipway "
                f"(client id {settings.OIDC_RP_CLIENT_ID!r})."
            ) from None
        except jwt.InvalidIssuerError:
            raise SignInRefused(f"The ID token was not issued by {issuer}.") from None
        except jwt.InvalidSignatureError:
            raise SignInRefused(
                "The ID token's signature does not match its content: it was altered after the provider signed it."
            ) from None
        except jwt.InvalidTokenError as error:
            raise SignInRefused(f"The ID token is not valid: {error}.") from None
        if kwargs.get("nonce") is not None and payload.get("nonce") != kwargs["nonce"]:
            raise SignInRefused("The ID token answers another sign-in (its nonce does not match): start again.")
        return payload

    def _signing_key(self, header: dict[str, Any]) -> jwt.PyJWK:
        """The provider's published key the token names (by `kid`), or its only signing key when the
        token names none (some providers leave `kid` out while they have one key)."""
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        keys = [
            key
            for key in response.json().get("keys", [])
            if key.get("use", "sig") == "sig" and key.get("alg", header["alg"]) == header["alg"]
        ]
        if "kid" in header:
            keys = [key for key in keys if key.get("kid") == header["kid"]]
        if len(keys) != 1:
            raise SignInRefused("The ID token is signed with a key the identity provider does not publish.")
        try:
            return jwt.PyJWK(keys[0])
        except jwt.PyJWKError as error:
            raise SignInRefused(f"The identity provider publishes a key this server cannot use: {error}.") from None

    def get_or_create_user(self, access_token, id_token, payload):
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = self.get_userinfo(access_token, id_token, payload)
            if userinfo.get("sub") != payload["sub"]:
                # OpenID Connect Core 1.0, section 5.3.2: otherwise the answer is not about this person.
                raise SignInRefused("The provider's user info describes another subject than the ID token.")
            claims.update(userinfo)
        groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
        if isinstance(groups, str):
            groups = [groups]
        seen_from = Actor.from_request(self.request)
        for attempt in range(1, SIGN_IN_ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    return self._sync(issuer=payload["iss"], claims=claims, groups=list(groups), seen_from=seen_from)
            except IntegrityError:
                # Another sign-in of the same person (a second tab, a double click) made the user, its
                # identity or a membership first; the next attempt finds them and changes nothing twice.
                if attempt == SIGN_IN_ATTEMPTS:
                    raise
                logger.info("a concurrent sign-in of subject %s got there first; reading its work", payload["sub"])
        raise AssertionError("unreachable")

    def _sync(self, *, issuer: str, claims: dict[str, Any], groups: list[str], seen_from: Actor):
        user = self._user_for(issuer=issuer, claims=claims, groups=groups)
        if user.is_active:  # a deactivated account is refused by the callback; nothing to sync
            actor = Actor(user=user, ip_address=seen_from.ip_address, user_agent=seen_from.user_agent)
            site_admin_sync_from_sso(actor=actor, user=user, groups=groups)
            changes = memberships_sync_from_sso(actor=actor, user=user, groups=groups)
            if changes:
                logger.info("memberships of %s synced from SSO groups: %s", user.get_username(), "; ".join(changes))
        return user

    def _user_for(self, *, issuer: str, claims: dict[str, Any], groups: list[str]):
        """The user this issuer's subject is; on a first sign-in, an existing account with the same
        verified email address (one that never signed in through SSO), or a new one."""
        identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=claims["sub"]).first()
        email = (claims.get("email") or "").strip()
        if identity is None:
            user = None
            if email and claims.get("email_verified") is True:
                user = (
                    self.UserModel.objects.filter(email__iexact=email, sso_identities__isnull=True)
                    .exclude(username__in=settings.BREAK_GLASS_USERS)
                    .order_by("pk")
                    .first()
                )
            if user is None:
                user = self.UserModel.objects.create_user(_free_username(claims), email=email)
                user.set_unusable_password()
            identity = SsoIdentity(user=user, issuer=issuer, subject=claims["sub"])
        user = identity.user
        user.email = email or user.email
        user.first_name = (claims.get("given_name") or user.first_name)[:150]
        user.last_name = (claims.get("family_name") or user.last_name)[:150]
        user.save()
        identity.last_sign_in_at = timezone.now()
        identity.groups = sorted(str(group) for group in groups)
        identity.save()
        return user


def _free_username(claims: dict[str, Any]) -> str:
    """A readable user name from the claims, never one that is taken (and never a break-glass one)."""
    wanted = claims.get("preferred_username") or (claims.get("email") or "").split("@")[0] or claims["sub"]
    base = re.sub(r"[^\w.@+-]", "-", str(wanted))[:140] or "user"
    user_model = get_user_model()
    name, number = base, 1
    while name in settings.BREAK_GLASS_USERS or user_model.objects.filter(username__iexact=name).exists():
        number += 1
        name = f"{base}-{number}"
    return name
