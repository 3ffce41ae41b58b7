import click

from slipway_cli import resolve
from slipway_cli.app import App, command


def register(cli: click.Group) -> None:
    @command(cli, "releases")
    @click.argument("env_spec", metavar="ENV")
    @click.option("--at", "at", metavar="TIME", help="An ISO 8601 time, e.g. 2026-11-25T10:00:00Z (default: now).")
    def releases(app: App, env_spec: str, at: str | None):
        """What runs in ENV (or ran, --at TIME): one release per model, who asked and who approved."""
        api, out = app.api, app.out
        environment = resolve.environment(api, env_spec)
        found = [
            {**r, "page_url": resolve.rollout_page(api, r["id"])}
            for r in api.get(f"/environments/{environment['id']}/releases/", {"at": at})
        ]
        page = resolve.environment_page(api, environment["id"])

        def human():
            when = f"at {at}" if at else "now"
            out.say(f"{environment['name']}, {when}:")
            if not found:
                out.say("  nothing ran there.")
                return
            out.table(
                ["MODEL", "VERSION", "STATE", "SINCE", "REQUESTED BY", "APPROVED BY", "DRIFT", "DIGEST", "ROLLOUT"],
                [
                    (
                        f"{r['team']}/{r['model']}",
                        f"v{r['version_number']}",
                        r["state"].replace("_", " "),
                        (r["finished_at"] or "")[:16].replace("T", " "),
                        r["requested_by"],
                        ", ".join(r["approved_by"]) or "-",
                        r["drift"] or "-",
                        r["image"].rpartition("@")[2][:19],  # the whole reference is in --json
                        f"#{r['id']}",
                    )
                    for r in found
                ],
            )

        out.result(found, human=human)
        out.page(page)
