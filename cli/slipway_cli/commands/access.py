import sys

import click

from slipway_cli import config, resolve
from slipway_cli.app import App, command
from slipway_cli.client import Api
from slipway_cli.errors import Refused, Usage

OBJECT_KINDS = ("team", "model", "version", "promotion")


def object_page(api: Api, kind: str, ref: str) -> tuple[str, str]:
    """The API's `kind:id` for what the person typed (names allowed), and the page that shows it."""
    if kind == "team":
        return f"team:{ref}", resolve.team_page(api, ref)
    if kind == "model":
        model = resolve.model(api, ref)
        return f"model:{model['id']}", resolve.model_page(api, model)
    if kind == "version":
        version = resolve.version(api, ref)
        return f"version:{version['id']}", resolve.version_page(api, version)
    if not ref.isdigit():
        raise Usage(f"a promotion is named by its number, got {ref!r}")
    return f"promotion:{ref}", resolve.promotion_page(api, int(ref))


def register(cli: click.Group) -> None:
    @command(cli, "login")
    @click.argument("url")
    @click.option("--token-stdin", is_flag=True, help="Read the token from standard input (for scripts).")
    def login(app: App, url: str, token_stdin: bool):
        """Check an API token against the server at URL and keep both in your config folder (mode 600).

        The token is asked for without echo, or read from stdin; create one under "API tokens" in the UI.
        SLIPWAY_URL and SLIPWAY_TOKEN, when set, take precedence over what is kept."""
        url = config.normalize_url(url)
        token = sys.stdin.readline() if token_stdin else click.prompt("API token", hide_input=True)
        token = token.strip()
        if not token:
            raise Usage("no token given")
        settings = config.Settings(url=url, token=token, retries=2, backoff=1.0, poll_interval=1.0)
        api = Api(settings, say=app.out.note)
        try:
            teams = [t["slug"] for t in api.every("/teams/")]
        finally:
            api.close()
        path = config.write_file(url=url, token=token)
        app.out.result(
            {"url": url, "teams": teams, "config": str(path), "page_url": url + "/"},
            human=lambda: app.out.say(f"Signed in to {url}; your teams: {', '.join(teams) or 'none'}. Kept in {path}"),
        )
        app.out.page(url + "/")

    @command(cli, "logout")
    def logout(app: App):
        """Forget the server and token kept by `slipway login`."""
        removed = config.remove_file()
        app.out.result(
            {"removed": removed, "config": str(config.config_path())},
            human=lambda: app.out.say("Signed out." if removed else "Nothing was kept; nothing to forget."),
        )

    @command(cli, "can-i")
    @click.argument("action")
    @click.argument("object_spec", metavar="OBJECT")
    @click.option("--env", "env_spec", help="For deploy: the environment (name or id).")
    @click.option("--user", help="Ask for someone else (team admins only).")
    def can_i(app: App, action: str, object_spec: str, env_spec: str | None, user: str | None):
        """May you do ACTION (deploy, approve, upload_version, …) on OBJECT, and why?

        OBJECT is team:SLUG, model:NAME, version:MODEL:NUMBER or promotion:NUMBER (ids work too).
        Exit code 0 if allowed, 4 if not, with the reason."""
        api, out = app.api, app.out
        kind, _, ref = object_spec.partition(":")
        if kind not in OBJECT_KINDS or not ref:
            raise Usage(f"OBJECT must be KIND:NAME with KIND one of {', '.join(OBJECT_KINDS)}; got {object_spec!r}")
        target, page = object_page(api, kind, ref)
        environment = resolve.environment(api, env_spec)["id"] if env_spec else None
        answer = api.get("/can-i/", {"action": action, "object": target, "environment": environment, "user": user})
        verdict = "yes" if answer["allowed"] else "no"
        out.result(
            {**answer, "page_url": page},
            human=lambda: out.say(f"{verdict}: {answer['reason']}"),
        )
        out.page(page)
        if not answer["allowed"]:
            raise Refused(f"{answer['user']} may not {answer['action']} {object_spec}: {answer['reason']}")
