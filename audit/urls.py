from django.urls import path

from audit import views

app_name = "audit"
urlpatterns = [
    path("audit/", views.event_list, name="event-list"),
    path("audit/export.csv", views.export_csv, name="export-csv"),
    path("audit/export.jsonl", views.export_jsonl, name="export-jsonl"),
    path("audit/<int:pk>/review/", views.event_review, name="event-review"),
]
