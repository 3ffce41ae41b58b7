from django.urls import path

from registry import views

app_name = "registry"
urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/new/", views.model_create, name="model-create"),
    path("models/<slug:team>/<slug:name>/edit/", views.model_edit, name="model-edit"),
    path("models/<slug:team>/<slug:name>/archive/", views.model_archive, name="model-archive"),
    path("models/<slug:team>/<slug:name>/versions/new/", views.version_create, name="version-create"),
    path("models/<slug:team>/<slug:name>/v<int:number>/artifact", views.version_artifact, name="version-artifact"),
]
