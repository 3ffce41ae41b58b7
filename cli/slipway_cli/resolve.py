"""Names a person types (`iris`, `vision/iris:3`, `prod`) turned into the API's objects, and the
pages of the web UI that show them."""

import re

from slipway_cli.client import Api
from slipway_cli.errors import Usage

VERSION_SPEC = re.compile(r"^(?:(?P<team>[a-z0-9-]+)/)?(?P<model>[a-z0-9-]+)(?::v?(?P<number>\d+)|@(?P<label>.+))$")


def split_model(spec: str) -> tuple[str | None, str]:
    team, _, name = spec.rpartition("/")
    return team or None, name


def model(api: Api, spec: str) -> dict:
    """A model by id, by name, or by team/name when the name is used in several of your teams."""
    if spec.isdigit():
        return api.get(f"/models/{spec}/")
    team, name = split_model(spec)
    found = list(api.every("/models/", {"name": name, "team": team}))
    if not found:
        raise Usage(f"no model {spec!r} in your teams")
    if len(found) > 1:
        teams = ", ".join(sorted(f"{m['team']}/{m['name']}" for m in found))
        raise Usage(f"{spec!r} is a model of several of your teams ({teams}); say which, as team/name")
    return found[0]


def version(api: Api, spec: str) -> dict:
    """A version by id, as model:NUMBER (iris:3, iris:v3) or model@LABEL, optionally team/ first."""
    if spec.isdigit():
        return api.get(f"/versions/{spec}/")
    match = VERSION_SPEC.match(spec)
    if not match:
        raise Usage(f"{spec!r} is not a version: give its id, MODEL:NUMBER (iris:3) or MODEL@LABEL (iris@2026-11)")
    found = list(
        api.every(
            "/versions/",
            {
                "team": match["team"],
                "model_name": match["model"],
                "number": match["number"],
                "label": match["label"],
            },
        )
    )
    if not found:
        raise Usage(f"no version {spec!r} in your teams")
    if len(found) > 1:
        teams = ", ".join(sorted({v["team"] for v in found}))
        raise Usage(f"{spec!r} matches versions in several of your teams ({teams}); write team/{spec}")
    return found[0]


def environment(api: Api, spec: str, *, team: str | None = None) -> dict:
    """An environment by id or name. A team's own environment wins over a shared one of the same name."""
    if spec.isdigit():
        return api.get(f"/environments/{spec}/")
    found = [e for e in api.every("/environments/", {"search": spec}) if e["name"] == spec]
    if len(found) > 1 and team:
        found = [e for e in found if e["team"] == team] or [e for e in found if e["team"] is None]
    if not found:
        raise Usage(f"no environment {spec!r} that you can see")
    if len(found) > 1:
        ids = ", ".join(str(e["id"]) for e in found)
        raise Usage(f"several environments are named {spec!r} (ids {ids}); give the id")
    return found[0]


# The web UI's pages, by what they show. The tests open each address the CLI prints.
def model_page(api: Api, model: dict) -> str:
    return api.page(model["url"])


def version_page(api: Api, version: dict) -> str:
    return api.page(f"/models/{version['team']}/{version['model_name']}/v{version['number']}/")


def build_page(api: Api, build_id: int) -> str:
    return api.page(f"/builds/{build_id}/")


def rollout_page(api: Api, rollout_id: int) -> str:
    return api.page(f"/rollouts/{rollout_id}/")


def promotion_page(api: Api, promotion_id: int) -> str:
    return api.page(f"/promotions/{promotion_id}/")


def environment_page(api: Api, environment_id: int) -> str:
    return api.page(f"/environments/{environment_id}/")


def team_page(api: Api, slug: str) -> str:
    return api.page(f"/teams/{slug}/")
