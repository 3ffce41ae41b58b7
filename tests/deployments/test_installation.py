"""Which installation this is: the label that keeps two Slipways (or two test runs) on one host apart."""

import re

import pytest

from config.env import ImproperlyConfigured, envlabel
from deployments.models import Installation
from deployments.selectors.installation import installation_id
from deployments.services.environments import identity_for
from tests.support.factories import EnvironmentFactory


def test_without_the_setting_the_id_is_made_once_and_kept_in_the_database(settings):
    settings.INSTALLATION_ID = ""

    first = installation_id()

    assert re.fullmatch(r"i[0-9a-f]{12}", first)
    assert installation_id() == first
    assert Installation.objects.get().installation_id == first


def test_the_setting_wins_over_the_stored_id(settings):
    settings.INSTALLATION_ID = ""
    stored = installation_id()
    settings.INSTALLATION_ID = "edge-eu-1"

    assert installation_id() == "edge-eu-1" != stored


def test_an_id_that_cannot_be_a_label_stops_the_start_naming_the_setting(monkeypatch):
    monkeypatch.setenv("SLIPWAY_INSTALLATION_ID", "prod installation")
    with pytest.raises(ImproperlyConfigured, match=r"^SLIPWAY_INSTALLATION_ID must be at most 63 letters"):
        envlabel("SLIPWAY_INSTALLATION_ID", "")


def test_a_rollout_identity_names_installation_environment_team_and_model(settings, model):
    settings.INSTALLATION_ID = "edge-eu-1"
    staging = EnvironmentFactory(name="staging")
    prod = EnvironmentFactory(name="prod")

    identity = identity_for(staging, model)

    assert identity.selector() == {
        "app.kubernetes.io/managed-by": "slipway",
        "slipway.io/installation": "edge-eu-1",
        "slipway.io/environment-id": str(staging.pk),
        "slipway.io/team": "vision",
        "slipway.io/model": "iris",
    }
    assert identity.labels()["slipway.io/environment"] == "staging"
    assert identity.name.startswith("vision-iris-")
    assert identity_for(prod, model).name != identity.name
    settings.INSTALLATION_ID = "edge-eu-2"
    assert identity_for(staging, model).name != identity.name
