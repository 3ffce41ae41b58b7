from django.apps import AppConfig
from django.conf import settings

from config.env import ImproperlyConfigured


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Teams and access"

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from accounts import throttle
        from accounts.models import Role

        user_login_failed.connect(throttle.on_login_failed, dispatch_uid="accounts.throttle.failed")
        user_logged_in.connect(throttle.on_logged_in, dispatch_uid="accounts.throttle.logged_in")

        # The shape of the setting was checked when it loaded; its roles can only be checked here.
        for group, team, role in settings.OIDC_GROUP_ROLES:
            if role not in Role.values:
                raise ImproperlyConfigured(
                    f"SLIPWAY_OIDC_GROUP_ROLES: {group}={team}:{role} names no role; "
                    f"use one of {', '.join(Role.values)}"
                )
