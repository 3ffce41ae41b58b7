from rest_framework import permissions

from accounts.models import ApiToken


class TokenScopes(permissions.BasePermission):
    """Reading through an API token needs its `read` scope; writes are checked by the services."""

    message = "This API token lacks the 'read' scope."

    def has_permission(self, request, view):
        token = request.auth
        if isinstance(token, ApiToken) and request.method in permissions.SAFE_METHODS:
            return token.has_scope("read")
        return True
