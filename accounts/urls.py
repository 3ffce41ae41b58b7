from django.urls import path

from accounts import views

app_name = "accounts"
urlpatterns = [
    path("settings/tokens/", views.token_list, name="tokens"),
    path("settings/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("teams/", views.team_list, name="team-list"),
    path("teams/<slug:slug>/", views.team_detail, name="team-detail"),
    path("teams/<slug:slug>/members/<str:username>/remove/", views.member_remove, name="member-remove"),
]
