from django.core.management import call_command

from config import health


def test_healthz_answers_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_checks_the_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "migrations": "ok", "redis": "ok"}


def test_readyz_is_unavailable_while_migrations_are_pending(client, monkeypatch):
    # What a new web pod sees while the upgrade's migrate Job has not finished yet.
    monkeypatch.setattr(health, "_all_migrations_applied", False)
    call_command("migrate", "sessions", "zero", verbosity=0)
    try:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["problems"] == {"migrations": "1 not applied yet (python manage.py migrate)"}
    finally:
        call_command("migrate", "sessions", verbosity=0)
    assert client.get("/readyz").status_code == 200


def test_readyz_names_what_is_unreachable(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert set(response.json()["problems"]) == {"redis"}


def test_the_api_schema_and_docs_are_served(client, django_user_model):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/models/{id}/versions/" in schema.content
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
