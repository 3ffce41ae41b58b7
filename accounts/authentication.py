from datetime import timedelta

from django.db.models import Q
from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts import tokens
from accounts.models import ApiToken
from accounts.permissions import REQUEST_TOKEN_ATTRIBUTE
from audit.services import client_ip

# Recording every use would turn each API read into a write; once a minute is enough to answer
# "is this token still used?".
LAST_USED_RESOLUTION = timedelta(seconds=60)


class TokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer slw_…` (or `Token slw_…`) for scripts."""

    keywords = ("bearer", "token")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0].lower() not in self.keywords:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: expected 'Bearer <token>'.")
        raw = header[1]
        prefix = tokens.prefix_of(raw)
        try:
            token = ApiToken.objects.select_related("user").get(prefix=prefix) if prefix else None
        except ApiToken.DoesNotExist:
            token = None
        if token is None or not tokens.matches(raw, token.digest):
            raise exceptions.AuthenticationFailed("Invalid API token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API token has been revoked.")
        if token.is_expired:
            raise exceptions.AuthenticationFailed("This API token has expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("The token's user is inactive.")
        self._touch(token, request)
        # Every query narrowed for this user (accounts.permissions.restrict) honours the token's limits.
        setattr(token.user, REQUEST_TOKEN_ATTRIBUTE, token)
        return token.user, token

    def _touch(self, token: ApiToken, request) -> None:
        now = timezone.now()
        if token.last_used_at is not None and token.last_used_at >= now - LAST_USED_RESOLUTION:
            return  # the row just read says it is fresh: no write statement at all (on SQLite even
            # an UPDATE that matches nothing takes the database's write lock)
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now, last_used_ip=client_ip(request))

    def authenticate_header(self, request):
        return 'Bearer realm="api"'
