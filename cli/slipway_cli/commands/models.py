import click

from slipway_cli import resolve
from slipway_cli.app import App, command
from slipway_cli.errors import Usage


def register(cli: click.Group) -> None:
    @cli.group()
    def models():
        """Registered models: list them, register one."""

    @command(models, "list")
    @click.option("--team", help="Only this team's models (its slug).")
    @click.option("--archived", is_flag=True, help="Include archived models.")
    def models_list(app: App, team: str | None, archived: bool):
        """The models of your teams."""
        api = app.api
        found = [
            {**m, "page_url": resolve.model_page(api, m)}
            for m in api.every("/models/", {"team": team, "archived": None if archived else "false"})
        ]
        page = api.page("/models/" + (f"?team={team}" if team else ""))

        def human():
            if not found:
                app.out.say("No models.")
            else:
                app.out.table(
                    ["MODEL", "TASK", "VERSIONS", "LATEST", "AUTO BUILD", "ID"],
                    [
                        (
                            f"{m['team']}/{m['name']}" + (" (archived)" if m["archived"] else ""),
                            m["task"],
                            m["version_count"],
                            f"v{m['latest_version']}" if m["latest_version"] else "",
                            "yes" if m["auto_build"] else "no",
                            m["id"],
                        )
                        for m in found
                    ],
                )

        app.out.result(found, human=human)
        app.out.page(page)

    @command(models, "create")
    @click.argument("name")
    @click.option("--team", help="The team's slug (needed when you are in several teams).")
    @click.option("--description", default="")
    @click.option("--task", default="", help="A free label, e.g. classification.")
    @click.option("--auto-build/--no-auto-build", default=True, show_default=True, help="Build each upload.")
    def models_create(app: App, name: str, team: str | None, description: str, task: str, auto_build: bool):
        """Register a model NAME in a team."""
        api = app.api
        if team is None:
            teams = [t["slug"] for t in api.every("/teams/")]
            if len(teams) != 1:
                choices = ", ".join(teams) or "none"
                raise Usage(f"say which team with --team (yours: {choices})")
            team = teams[0]
        created = api.post(
            "/models/",
            {"team": team, "name": name, "description": description, "task": task, "auto_build": auto_build},
        )
        page = resolve.model_page(api, created)
        app.out.result(
            {**created, "page_url": page},
            human=lambda: app.out.say(f"Registered {created['team']}/{created['name']} (id {created['id']})"),
        )
        app.out.page(page)
