"""Secrets stored encrypted are write-only everywhere, the Django admin included: a page shows whether one is
set, never its value. Checked over every encrypted field of every model, so a new secret cannot regress."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.forms import modelform_factory

from deployments.crypto import EncryptedTextField
from deployments.models import ContainerRegistry, Environment, Webhook
from tests.support.factories import EnvironmentFactory, RegistryFactory

# How to make a row of each model that has a secret (a model missing here fails the first test).
MAKERS = {
    Environment: lambda team: EnvironmentFactory(team=team),
    ContainerRegistry: lambda team: RegistryFactory(team=team),
    Webhook: lambda team: Webhook.objects.create(team=team, url="https://hooks.example.net/x", secret="s"),
}


def secret_fields(model) -> list[str]:
    return [field.name for field in model._meta.get_fields() if isinstance(field, EncryptedTextField)]


def models_with_secrets() -> list:
    return [model for model in apps.get_models() if secret_fields(model)]


def with_secrets(model, team):
    obj = MAKERS[model](team)
    values = {name: f"TOPSECRET-{model.__name__}-{name}" for name in secret_fields(model)}
    model.objects.filter(pk=obj.pk).update(**values)
    return obj, values


def test_every_model_with_a_secret_is_checked_here():
    assert set(models_with_secrets()) == set(MAKERS)


@pytest.mark.parametrize("model", models_with_secrets(), ids=lambda model: model.__name__)
def test_the_admin_change_page_never_shows_a_stored_secret(client, site_admin, team, model):
    obj, values = with_secrets(model, team)
    client.force_login(site_admin)
    info = (model._meta.app_label, model._meta.model_name)

    page = client.get(f"/admin/{info[0]}/{info[1]}/{obj.pk}/change/")

    assert page.status_code == 200
    html = page.content.decode()
    assert not [value for value in values.values() if value in html]


@pytest.mark.parametrize("model", models_with_secrets(), ids=lambda model: model.__name__)
def test_any_model_form_renders_secrets_as_write_only_and_an_empty_box_keeps_them(team, model):
    obj, values = with_secrets(model, team)
    obj.refresh_from_db()
    form_class = modelform_factory(model, fields=secret_fields(model))

    html = str(form_class(instance=obj))

    assert not [value for value in values.values() if value in html]
    assert html.count("Stored encrypted, never shown: set") == len(values)
    form = form_class(data={name: "" for name in values}, instance=obj)
    assert form.is_valid(), form.errors
    form.save()
    obj.refresh_from_db()
    assert {name: getattr(obj, name) for name in values} == values


def test_the_environment_admin_offers_every_docker_secret_as_write_only(site_admin, rf):
    request = rf.get("/admin/")
    request.user = site_admin
    form = admin.site._registry[Environment].get_form(request)()
    for name in ("docker_tls_ca", "docker_tls_cert", "docker_tls_key", "docker_ssh_key"):
        assert "Stored encrypted, never shown: not set" in str(form[name])
