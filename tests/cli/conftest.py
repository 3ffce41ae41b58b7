"""The CLI installed as a CI job installs it, run against the live server with the team's tokens."""

import itertools

import pytest

from accounts import services as account_services
from tests.support.cli import Slipway, install_cli


@pytest.fixture(scope="session")
def cli_bin(tmp_path_factory):
    return install_cli(tmp_path_factory.mktemp("slipway-cli"))


@pytest.fixture
def token_of():
    made = itertools.count(1)

    def make(user, scopes=("read", "deploy"), **limits):
        name = f"ci-{next(made)}"
        return account_services.token_create(user=user, name=name, scopes=list(scopes), **limits)[1]

    return make


@pytest.fixture
def slipway(cli_bin, live_server, tmp_path):
    """`slipway(token)`: the CLI signed in with that token, in a fresh home folder."""
    (tmp_path / "home").mkdir()

    def signed_in(token: str = "", **env: str) -> Slipway:
        settings = {
            "HOME": str(tmp_path / "home"),
            "XDG_CONFIG_HOME": str(tmp_path / "home" / ".config"),
            "SLIPWAY_URL": live_server.url,
            "SLIPWAY_TOKEN": token,
            "SLIPWAY_RETRY_BACKOFF": "0.05",
            "SLIPWAY_POLL_INTERVAL": "0.2",
            **env,
        }
        return Slipway(cli_bin, {k: v for k, v in settings.items() if v}, tmp_path)

    return signed_in
