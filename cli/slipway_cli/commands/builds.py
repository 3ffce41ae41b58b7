import click

from slipway_cli import follow, resolve
from slipway_cli.app import App, command, deadline, timeout_option


def register(cli: click.Group) -> None:
    @cli.group()
    def builds():
        """Image builds: read their logs."""

    @command(builds, "logs")
    @click.argument("build_id", metavar="ID", type=click.IntRange(min=1))
    @click.option("--follow", "-f", "following", is_flag=True, help="Wait for new lines until the build ends.")
    @timeout_option
    def builds_logs(app: App, build_id: int, following: bool, timeout: float | None):
        """Print the log of build ID, each line once and in order (--json: one JSON object per line).

        With --follow, the exit code is the build's: 0 if it succeeded, 1 if it failed or was cancelled."""
        api, out = app.api, app.out
        build = api.get(f"/builds/{build_id}/")
        out.note(f"Build #{build_id} of {build['team']}/{build['model']} v{build['version_number']}: {build['state']}")
        out.note(f"  page: {resolve.build_page(api, build_id)}")
        if following:
            finished = follow.build(api, out, build_id, deadline=deadline(timeout), log_is_result=True)
            out.note(f"Build #{build_id} succeeded: {finished['digest_reference']}")
        else:
            what = f"build #{build_id}"
            follow.log(api, out, "builds", build_id, follow=False, deadline=deadline(None), what=what, is_result=True)
