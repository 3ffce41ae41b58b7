"""Following long work: a build or rollout log, and a promotion waiting for its approvals.

A log is read with the API's contract: `?after=<seq>` returns the lines after the last one seen,
`next_after` says where to go on, and `finished` is true only once the work ended and every line
was returned. Each line is printed once, in order, whatever the retries in between (a repeated GET
with the same `after` returns the same window).
"""

import time
from dataclasses import dataclass

from slipway_cli import resolve
from slipway_cli.client import Api
from slipway_cli.errors import TimedOut, WorkFailed
from slipway_cli.output import Output

WINDOW = 1000


@dataclass
class Deadline:
    seconds: float | None

    def __post_init__(self):
        self.ends = None if self.seconds is None else time.monotonic() + self.seconds

    def passed(self) -> bool:
        return self.ends is not None and time.monotonic() >= self.ends

    def sleep(self, interval: float) -> None:
        if self.ends is not None:
            interval = max(0.0, min(interval, self.ends - time.monotonic()))
        time.sleep(interval)


def log(
    api: Api, out: Output, kind: str, pk: int, *, follow: bool, deadline: Deadline, what: str, is_result=False
) -> None:
    """Print the log of `/{kind}/{pk}/`: what there is, or (follow) until the work has finished."""
    after = 0
    while True:
        window = api.get(f"/{kind}/{pk}/log/", {"after": after, "limit": WINDOW})
        out.log_lines(window["lines"], is_result=is_result)
        after = window["next_after"]
        if window["finished"]:
            return
        if len(window["lines"]) < WINDOW:  # caught up: nothing more to read right now
            if not follow:
                return
            if deadline.passed():
                raise TimedOut(f"timed out after {deadline.seconds:g} s following {what} (still {window['state']})")
            deadline.sleep(api.settings.poll_interval)


def build(api: Api, out: Output, build_id: int, *, deadline: Deadline, log_is_result=False) -> dict:
    """Stream a build's log to its end; the finished build, or WorkFailed if it did not succeed."""
    page = resolve.build_page(api, build_id)
    what = f"build #{build_id}"
    log(api, out, "builds", build_id, follow=True, deadline=deadline, what=what, is_result=log_is_result)
    finished = api.get(f"/builds/{build_id}/")
    if finished["state"] != "succeeded":
        raise WorkFailed(
            f"build #{build_id} {finished['state']}: {finished['failure_reason'] or 'no reason given'}", page_url=page
        )
    return finished


def inspection(api: Api, out: Output, version: dict, *, deadline: Deadline) -> dict:
    """A large artifact is inspected on a server worker first: wait for that, or WorkFailed if rejected."""
    if version.get("inspection") == "inspecting":
        out.say("The server inspects the artifact before it builds; waiting")
    while version.get("inspection") == "inspecting":
        if deadline.passed():
            raise TimedOut(f"timed out after {deadline.seconds:g} s while the server inspected the artifact")
        deadline.sleep(api.settings.poll_interval)
        version = api.get(f"/versions/{version['id']}/")
    if version.get("inspection") == "rejected":
        raise WorkFailed(f"the artifact was rejected: {version['inspection_note']}", page_url=None)
    return version


def rollout(api: Api, out: Output, rollout_id: int, *, deadline: Deadline) -> dict:
    """Stream a rollout's steps to its end; the finished rollout, or WorkFailed if it did not succeed."""
    page = resolve.rollout_page(api, rollout_id)
    log(api, out, "rollouts", rollout_id, follow=True, deadline=deadline, what=f"rollout #{rollout_id}")
    finished = api.get(f"/rollouts/{rollout_id}/")
    if finished["state"] != "succeeded":
        reason = finished["failure_reason"] or "no reason given"
        raise WorkFailed(f"rollout #{rollout_id} {finished['state'].replace('_', ' ')}: {reason}", page_url=page)
    out.say(
        f"Rollout #{rollout_id} succeeded: {finished['model']} v{finished['version_number']} "
        f"runs in {finished['environment']} at {finished['endpoint'] or 'its endpoint'}"
    )
    return finished


def counted(promotion: dict) -> list[dict]:
    """The approvals that count: those given for the image the request now carries."""
    digest = promotion["image"].split("@", 1)[-1]
    return [a for a in promotion["approvals"] if a["decision"] == "approve" and a["digest"] == digest]


def describe_approvals(promotion: dict) -> str:
    names = ", ".join(a["approver"] for a in counted(promotion)) or "nobody yet"
    return f"{promotion['approvals_counted']} of {promotion['required_approvals']} approvals ({names})"


def promotion(api: Api, out: Output, promotion_id: int, *, deadline: Deadline) -> dict:
    """Wait for the decision, printing each approval as it comes; then follow the rollout it starts."""
    page = resolve.promotion_page(api, promotion_id)
    shown: set[int] = set()
    note = None
    while True:
        current = api.get(f"/promotions/{promotion_id}/")
        for approval in current["approvals"]:
            if approval["id"] in shown:
                continue
            shown.add(approval["id"])
            verb = "approved" if approval["decision"] == "approve" else "rejected"
            comment = f": {approval['comment']}" if approval["comment"] else ""
            out.say(f"{verb} by {approval['approver']}{comment}  [{describe_approvals(current)}]")
        state = current["state"]
        if state in ("rejected", "expired", "cancelled"):
            why = current["note"] or state
            raise WorkFailed(f"promotion #{promotion_id} {state}: {why}", page_url=page)
        if current["rollout"]:
            out.say(f"Approved; rollout #{current['rollout']} deploys it")
            return rollout(api, out, current["rollout"], deadline=deadline)
        if state == "approved" and current["note"] and current["note"] != note:
            note = current["note"]
            out.say(f"Approved, not deployed yet: {note}")
        if deadline.passed():
            raise TimedOut(
                f"timed out after {deadline.seconds:g} s: promotion #{promotion_id} is still {state}, "
                f"{describe_approvals(current)}. It stays open; an approval later still deploys it.",
                page_url=page,
            )
        deadline.sleep(api.settings.poll_interval)
