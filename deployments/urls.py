from django.urls import path

from deployments.views import builds, registries

app_name = "deployments"
urlpatterns = [
    path("builds/<int:pk>/", builds.build_detail, name="build-detail"),
    path("builds/<int:pk>/cancel/", builds.build_cancel, name="build-cancel"),
    path("models/<slug:team>/<slug:name>/v<int:number>/build/", builds.build_start, name="build-start"),
    path("settings/registries/", registries.registry_list, name="registry-list"),
    path("settings/registries/new/", registries.registry_edit, name="registry-create"),
    path("settings/registries/<int:pk>/", registries.registry_edit, name="registry-edit"),
    path("settings/registries/<int:pk>/delete/", registries.registry_delete, name="registry-delete"),
]
