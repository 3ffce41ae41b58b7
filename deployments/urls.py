from django.urls import path

from deployments.views import builds, environments, promotions, registries, rollouts, vulnerabilities

app_name = "deployments"
urlpatterns = [
    path("builds/<int:pk>/", builds.build_detail, name="build-detail"),
    path("builds/<int:pk>/cancel/", builds.build_cancel, name="build-cancel"),
    path("models/<slug:team>/<slug:name>/v<int:number>/build/", builds.build_start, name="build-start"),
    path("environments/", environments.environment_list, name="environment-list"),
    path("environments/new/", environments.environment_edit, name="environment-create"),
    path("environments/<int:pk>/", environments.environment_detail, name="environment-detail"),
    path("environments/<int:pk>/edit/", environments.environment_edit, name="environment-edit"),
    path("environments/<int:pk>/test/", environments.environment_test, name="environment-test"),
    path("environments/<int:pk>/freezes/", environments.freeze_create, name="freeze-create"),
    path("environments/<int:pk>/freezes/<int:window_pk>/delete/", environments.freeze_delete, name="freeze-delete"),
    path("environments/<int:pk>/acceptances/", vulnerabilities.acceptance_create, name="acceptance-create"),
    path(
        "environments/<int:pk>/acceptances/<int:acceptance_pk>/revoke/",
        vulnerabilities.acceptance_revoke,
        name="acceptance-revoke",
    ),
    path("environments/<int:pk>/rollback/", rollouts.rollout_rollback, name="rollout-rollback"),
    path("rollouts/<int:pk>/", rollouts.rollout_detail, name="rollout-detail"),
    path("rollouts/<int:pk>/cancel/", rollouts.rollout_cancel, name="rollout-cancel"),
    path("models/<slug:team>/<slug:name>/v<int:number>/deploy/", rollouts.rollout_start, name="rollout-start"),
    path("promotions/", promotions.promotion_list, name="promotion-list"),
    path("promotions/<int:pk>/", promotions.promotion_detail, name="promotion-detail"),
    path("promotions/<int:pk>/<str:decision>/", promotions.promotion_decide, name="promotion-decide"),
    path("models/<slug:team>/<slug:name>/v<int:number>/promote/", promotions.promotion_create, name="promotion-create"),
    path("settings/registries/", registries.registry_list, name="registry-list"),
    path("settings/registries/new/", registries.registry_edit, name="registry-create"),
    path("settings/registries/<int:pk>/", registries.registry_edit, name="registry-edit"),
    path("settings/registries/<int:pk>/delete/", registries.registry_delete, name="registry-delete"),
]
