import click

from slipway_cli import follow, resolve
from slipway_cli.app import App, command, deadline, timeout_option


def summary(app: App, promotion: dict) -> None:
    app.out.say(
        f"Promotion #{promotion['id']}: {promotion['team']}/{promotion['model']} v{promotion['version_number']} "
        f"to {promotion['environment']}, {promotion['state']}, {follow.describe_approvals(promotion)}"
    )


def register(cli: click.Group) -> None:
    @command(cli, "promote")
    @click.argument("version_spec", metavar="VERSION")
    @click.option("--env", "env_spec", required=True, help="The protected environment: name or id.")
    @click.option("--reason", required=True, help="Why this version should go there (the approvers read it).")
    @click.option("--wait", is_flag=True, help="Wait for the approvals and the rollout; exit 1 if rejected.")
    @timeout_option
    def promote(app: App, version_spec: str, env_spec: str, reason: str, wait: bool, timeout: float | None):
        """Ask for VERSION to be deployed to a protected environment, once approved."""
        api, out = app.api, app.out
        version = resolve.version(api, version_spec)
        environment = resolve.environment(api, env_spec, team=version["team"])
        promotion = api.post(
            "/promotions/", {"version": version["id"], "environment": environment["id"], "reason": reason}
        )
        page = resolve.promotion_page(api, promotion["id"])
        summary(app, promotion)
        out.page(page)
        result = {"promotion": {**promotion, "page_url": page}, "rollout": None}
        if wait:
            out.say("Waiting for approval…")
            rollout = follow.promotion(api, out, promotion["id"], deadline=deadline(timeout))
            result["promotion"] = {**api.get(f"/promotions/{promotion['id']}/"), "page_url": page}
            result["rollout"] = {**rollout, "page_url": resolve.rollout_page(api, rollout["id"])}
        out.result(result, human=lambda: None)

    def decide(app: App, request_id: int, verb: str, comment: str, digest: str) -> None:
        api, out = app.api, app.out
        if not digest:
            # The decision names the image it is about: the one the request shows now. If the version is
            # rebuilt before the decision arrives, the server answers 409 and records nothing.
            digest = api.get(f"/promotions/{request_id}/")["image"].rpartition("@")[2]
            out.say(f"Deciding on image {digest}")
        promotion = api.post(f"/promotions/{request_id}/{verb}/", {"comment": comment, "digest": digest})
        page = resolve.promotion_page(api, request_id)
        summary(app, promotion)
        out.page(page)
        out.result({**promotion, "page_url": page}, human=lambda: None)

    digest_option = click.option(
        "--digest",
        default="",
        help="The image digest you reviewed (sha256:…); by default the one the request shows now.",
    )

    @command(cli, "approve")
    @click.argument("request_id", metavar="REQUEST", type=click.IntRange(min=1))
    @click.option("--comment", default="", help="Shown to the requester and kept on the record.")
    @digest_option
    def approve(app: App, request_id: int, comment: str, digest: str):
        """Approve promotion request REQUEST (its number), for the image it names."""
        decide(app, request_id, "approve", comment, digest)

    @command(cli, "reject")
    @click.argument("request_id", metavar="REQUEST", type=click.IntRange(min=1))
    @click.option("--comment", default="", help="Why (most environments require it).")
    @digest_option
    def reject(app: App, request_id: int, comment: str, digest: str):
        """Reject promotion request REQUEST (its number)."""
        decide(app, request_id, "reject", comment, digest)
