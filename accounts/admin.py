from django.contrib import admin

from accounts.forms import ThrottledAdminSignInForm
from accounts.models import ApiToken, Membership, SsoIdentity, Team

# The admin's own sign-in form is throttled like the sign-in page (accounts/throttle.py).
admin.site.login_form = ThrottledAdminSignInForm


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at"]  # set when the row is made; not for a person to type


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    # The digest is not shown: it is useless to a person and a gift to an attacker.
    list_display = ["name", "user", "prefix", "scopes", "expires_at", "last_used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["name", "user__username", "prefix"]
    fields = (
        "user",
        "name",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request):
        return False


@admin.register(SsoIdentity)
class SsoIdentityAdmin(admin.ModelAdmin):
    # Made at sign-in from the provider's token; deleting one makes the next sign-in a first one.
    list_display = ["user", "subject", "issuer", "groups", "last_sign_in_at"]
    search_fields = ["user__username", "subject"]
    readonly_fields = ["user", "issuer", "subject", "created_at", "last_sign_in_at", "groups"]

    def has_add_permission(self, request):
        return False
