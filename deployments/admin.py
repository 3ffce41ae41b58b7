"""The Django admin for site administrators. Secrets are left out (the product's own pages set them,
write-only); builds, rollouts and promotions are records, so they are read-only."""

from django.contrib import admin

from deployments.models import (
    Build,
    ContainerRegistry,
    Environment,
    EnvironmentGrant,
    FindingAcceptance,
    FreezeWindow,
    PromotionRequest,
    Rollout,
    VulnerabilityDatabase,
    Webhook,
)


@admin.register(ContainerRegistry)
class ContainerRegistryAdmin(admin.ModelAdmin):
    exclude = ["password"]
    list_display = ["name", "team", "url", "username", "insecure"]


class EnvironmentGrantInline(admin.TabularInline):
    """Roles granted to teams in a global environment (accounts.permissions.decide reads them)."""

    model = EnvironmentGrant
    extra = 0


@admin.register(Environment)
class EnvironmentAdmin(admin.ModelAdmin):
    exclude = ["kube_token", "kubeconfig"]
    inlines = [EnvironmentGrantInline]
    list_display = ["name", "team", "position", "target", "protected", "required_approvals"]
    list_filter = ["target", "protected"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Build)
class BuildAdmin(ReadOnlyAdmin):
    list_display = ["pk", "version", "state", "image_digest", "created_at"]
    list_filter = ["state"]
    exclude = ["bill_of_materials"]


@admin.register(Rollout)
class RolloutAdmin(ReadOnlyAdmin):
    list_display = ["pk", "model", "version", "environment", "kind", "state", "created_at"]
    list_filter = ["state", "kind", "environment"]


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    list_display = ["pk", "model", "version", "environment", "state", "requested_by", "created_at"]
    list_filter = ["state", "environment"]


@admin.register(FreezeWindow)
class FreezeWindowAdmin(admin.ModelAdmin):
    list_display = ["environment", "starts_at", "ends_at", "reason"]


@admin.register(Webhook)
class WebhookAdmin(admin.ModelAdmin):
    list_display = ["team", "url", "active"]
    exclude = ["secret"]


@admin.register(VulnerabilityDatabase)
class VulnerabilityDatabaseAdmin(ReadOnlyAdmin):
    """Where the advisories come from and how old they are (the periodic refresh writes it)."""

    list_display = ["source", "refreshed_at", "advisory_count", "withdrawn_count", "last_error", "load_seconds"]


@admin.register(FindingAcceptance)
class FindingAcceptanceAdmin(ReadOnlyAdmin):
    """Accepted on the environment page or through the API, so that each one is audited."""

    list_display = ["advisory_id", "model", "environment", "accepted_by", "expires_at", "revoked_at"]
    list_filter = ["environment"]
