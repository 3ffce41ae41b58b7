from django.contrib import admin

from registry.models import ModelVersion, RegisteredModel


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "task", "archived", "created_by", "created_at"]
    list_filter = ["team", "archived"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by", "created_at", "updated_at"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Read-only: versions are immutable records."""

    list_display = ["model", "number", "label", "framework", "artifact_size", "created_by", "created_at"]
    list_filter = ["framework"]
    search_fields = ["model__name", "label"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
