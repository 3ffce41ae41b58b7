from django.contrib import admin

from audit.models import AuditEvent, AuditReview


class ReadOnlyAdmin(admin.ModelAdmin):
    """History is read here, never written: no add, change or delete, whoever is signed in."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReviewInline(admin.TabularInline):
    model = AuditReview
    fields = ("created_at", "reviewer_username", "note")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "actor_username",
        "token_name",
        "action",
        "outcome",
        "object_type",
        "object_id",
        "object_repr",
        "team",
        "environment",
        "flagged",
    ]
    list_filter = ["outcome", "flagged", "action", "team", "environment", "created_at"]
    list_select_related = ["team"]
    search_fields = ["actor_username", "action", "object_type", "object_id", "object_repr", "reason"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # counting a large trail twice per page is slow
    fields = (
        "created_at",
        "actor",
        "actor_username",
        "token_name",
        "action",
        "outcome",
        "object_type",
        "object_id",
        "object_repr",
        "team",
        "environment",
        "reason",
        "flagged",
        "before",
        "after",
        "ip_address",
        "user_agent",
        "request_id",
    )
    readonly_fields = fields
    inlines = [ReviewInline]


@admin.register(AuditReview)
class AuditReviewAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "event", "reviewer_username", "note"]
    list_select_related = ["event"]
    search_fields = ["reviewer_username", "note"]
    fields = ("created_at", "event", "reviewer", "reviewer_username", "note")
    readonly_fields = fields
