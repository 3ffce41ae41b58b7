import click

from slipway_cli import follow, resolve
from slipway_cli.app import App, command, deadline, timeout_option


def started(app: App, rollout: dict, *, wait: bool, timeout: float | None) -> None:
    """Say what was queued; with --wait, follow its steps to the end (exit 1 if it fails)."""
    api, out = app.api, app.out
    page = resolve.rollout_page(api, rollout["id"])
    out.say(
        f"Rollout #{rollout['id']}: {rollout['team']}/{rollout['model']} v{rollout['version_number']} "
        f"to {rollout['environment']} ({rollout['kind'].replace('_', ' ')}), {rollout['state']}"
    )
    out.page(page)
    if wait:
        rollout = follow.rollout(api, out, rollout["id"], deadline=deadline(timeout))
    out.result({**rollout, "page_url": page}, human=lambda: None)


def register(cli: click.Group) -> None:
    @command(cli, "deploy")
    @click.argument("version_spec", metavar="VERSION")
    @click.option("--env", "env_spec", required=True, help="The environment: name or id.")
    @click.option("--reason", default="", help="Why, for the deployment history.")
    @click.option("--wait", is_flag=True, help="Follow the rollout and print its steps; exit 1 if it fails.")
    @timeout_option
    def deploy(app: App, version_spec: str, env_spec: str, reason: str, wait: bool, timeout: float | None):
        """Deploy VERSION (an id, MODEL:NUMBER or MODEL@LABEL) to an unprotected environment."""
        api = app.api
        version = resolve.version(api, version_spec)
        environment = resolve.environment(api, env_spec, team=version["team"])
        rollout = api.post("/rollouts/", {"version": version["id"], "environment": environment["id"], "reason": reason})
        started(app, rollout, wait=wait, timeout=timeout)

    @command(cli, "rollback")
    @click.argument("env_spec", metavar="ENV")
    @click.option("--model", "model_spec", required=True, help="The model: name, team/name or id.")
    @click.option("--reason", default="", help="Why, for the deployment history.")
    @click.option("--wait", is_flag=True, help="Follow the rollout and print its steps; exit 1 if it fails.")
    @timeout_option
    def rollback(app: App, env_spec: str, model_spec: str, reason: str, wait: bool, timeout: float | None):
        """Redeploy, in ENV, the release of a model that ran before the current one."""
        api = app.api
        model = resolve.model(api, model_spec)
        environment = resolve.environment(api, env_spec, team=model["team"])
        rollout = api.post(f"/environments/{environment['id']}/rollback/", {"model": model["id"], "reason": reason})
        started(app, rollout, wait=wait, timeout=timeout)
