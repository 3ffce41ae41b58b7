"""Failed password sign-ins, counted per account and per connecting address in the shared cache.

Every password form (the sign-in page, the admin site's) authenticates through Django's
`authenticate()`, whose `user_login_failed` signal counts each failure here; the forms ask
`refusal()` first, so a locked account or address is told plainly how long to wait, and
LocalPasswordBackend refuses it too, whichever form asked. The address is the client's as the audit
trail records it (audit.services.client_ip): the connecting one, and X-Forwarded-For only from the
proxies named in SLIPWAY_TRUSTED_PROXIES (anyone else can write that header).
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache

from audit.services import client_ip

_PREFIX = "slipway:signin"


def _key(kind: str, value: str) -> str:
    return f"{_PREFIX}:{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


def _keys(request, username: str | None) -> list[tuple[str, int, str]]:
    keys = []
    if username:
        keys.append((_key("account", username.strip().lower()), settings.SIGNIN_MAX_FAILURES_PER_ACCOUNT, "account"))
    address = client_ip(request) if request is not None else None
    if address:
        keys.append((_key("address", address), settings.SIGNIN_MAX_FAILURES_PER_ADDRESS, "address"))
    return keys


def record_failure(request, username: str | None) -> None:
    until = time.time() + settings.SIGNIN_LOCKOUT_SECONDS
    for key, _, _ in _keys(request, username):
        failures = cache.get(key) or {"count": 0}
        # The window restarts with each failure: a steady guesser stays locked out.
        cache.set(key, {"count": failures["count"] + 1, "until": until}, settings.SIGNIN_LOCKOUT_SECONDS)


def record_success(request, username: str | None) -> None:
    if username:
        cache.delete(_key("account", username.strip().lower()))


def refusal(request, username: str | None) -> str | None:
    """Why this sign-in is refused before the password is even checked, or None."""
    for key, limit, kind in _keys(request, username):
        failures = cache.get(key)
        if failures and failures["count"] >= limit:
            minutes = max(1, math.ceil((failures["until"] - time.time()) / 60))
            what = "this account" if kind == "account" else "your address"
            return (
                f"Too many failed sign-ins for {what}. Try again in {minutes} minute{'s' if minutes != 1 else ''}, "
                "or ask an administrator to reset the password."
            )
    return None


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """Receiver of django.contrib.auth's user_login_failed."""
    record_failure(request, credentials.get("username"))


def on_logged_in(sender, request, user, **kwargs) -> None:
    """Receiver of django.contrib.auth's user_logged_in: a good sign-in clears the account's count."""
    record_success(request, user.get_username())
