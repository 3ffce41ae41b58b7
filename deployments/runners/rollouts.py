"""Runs one rollout: render, apply, and watch until the new version serves or the rollout fails.

Claimed with a conditional update (a redelivered task does nothing); progress and the final state
are conditional updates too, so a rollout the reaper already failed stays failed. No database
transaction is open while the cluster or the Docker host is talked to.
"""

import contextlib
import logging
import socket
import time
import traceback

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from deployments import supervision, targets
from deployments.logs import LogWriter
from deployments.models import Rollout, RolloutLogLine, RolloutState, TargetKind
from deployments.selectors.rollouts import earlier_releases_here
from deployments.services import promotions, rollouts
from deployments.services.environments import identity_for, target_for
from deployments.supervision import DatabaseUnavailable, Heartbeat, ending_patience, with_database

logger = logging.getLogger(__name__)


class RolloutLost(Exception):
    """The rollout left the state this runner expected: stop quietly."""


def deploy_spec(rollout: Rollout) -> "targets.DeploySpec":
    config = rollout.deployment_settings
    scaling = config.get("autoscaling")
    return targets.DeploySpec(
        identity=identity_for(rollout.environment, rollout.model),
        image=rollout.image,
        version=rollout.version.number,
        deployment_id=rollout.pk,
        replicas=config["replicas"],
        resources=targets.Resources(
            cpu_request=config["cpu_request"],
            memory_request=config["memory_request"],
            cpu_limit=config["cpu_limit"],
            memory_limit=config["memory_limit"],
            gpus=config["gpus"],
        ),
        autoscaling=targets.Autoscaling(**scaling) if scaling else None,
        env=dict(config["env"]),
        secret_refs=tuple(config["secret_refs"]),
        port=config["port"],
        progress_deadline_seconds=config["progress_deadline_seconds"],
        adopt=earlier_releases_here(rollout) if rollout.environment.target == TargetKind.DOCKER else (),
    )


class RolloutRunner:
    def __init__(self, rollout: Rollout):
        self.rollout = rollout
        self.log = LogWriter(RolloutLogLine, rollout, seq=rollout.log_line_count)  # read just after the claim
        self.deadline = time.monotonic() + settings.ROLLOUT_TIMEOUT
        self.stop_state = RolloutState.FAILED

    def say(self, text: str) -> None:
        self.log(f"==> {text}")
        self.log.flush()

    def run(self) -> None:
        rollout = self.rollout
        verb = {"deploy": "Deploying", "rollback": "Rolling back to", "auto_rollback": "Automatically rolling back to"}
        environment = rollout.environment
        self.log(
            f"==> {verb[rollout.kind]} {rollout.model.team.slug}/{rollout.model.name} "
            f"{rollout.version.display_name} in {environment.name} ({environment.get_target_display()})"
        )
        self.say(f"Image {rollout.image}")
        target = target_for(
            rollout.environment, ready_timeout=rollout.deployment_settings.get("progress_deadline_seconds")
        )
        spec = deploy_spec(rollout)
        with contextlib.closing(target):  # its connections to the cluster or engine end with the rollout
            manifests = target.render(spec)
            with_database(lambda: Rollout.objects.filter(pk=rollout.pk).update(manifests=manifests))
            endpoint = target.deploy(
                spec, log=self.log, on_progress=self.progress, should_stop=self.should_stop, manifests=manifests
            )
        self.finish(RolloutState.SUCCEEDED, "", endpoint=endpoint)
        with_database(lambda: rollouts.release_succeeded(rollout))
        with_database(lambda: promotions.release_deployed(rollout))
        self.say(f"{rollout.version.display_name} is serving at {endpoint}")

    def progress(self, progress: "targets.Progress") -> None:
        data = {
            "desired": progress.desired,
            "updated": progress.updated,
            "ready": progress.ready,
            "available": progress.available,
            "message": progress.message,
        }
        updated = with_database(
            lambda: Rollout.objects.filter(pk=self.rollout.pk, state__in=RolloutState.running()).update(
                state=RolloutState.PROGRESSING, progress=data, heartbeat_at=timezone.now()
            )
        )
        if not updated:
            raise RolloutLost()
        self.log.flush()

    def should_stop(self) -> str | None:
        if time.monotonic() > self.deadline:
            return f"The rollout exceeded its time limit of {settings.ROLLOUT_TIMEOUT} s."
        state, cancel = with_database(
            lambda: Rollout.objects.filter(pk=self.rollout.pk).values_list("state", "cancel_requested").get()
        )
        if state not in RolloutState.running():
            raise RolloutLost()
        if cancel:
            self.stop_state = RolloutState.CANCELLED
            return "Cancelled at a user's request."
        return None

    def finish(self, state: str, reason: str, **fields) -> None:
        self.log.flush()
        if not with_database(
            lambda: Rollout.objects.filter(pk=self.rollout.pk, state__in=RolloutState.running()).update(
                state=state, failure_reason=reason[:1000], finished_at=timezone.now(), **fields
            ),
            limit=ending_patience(),
        ):
            raise RolloutLost()
        self.rollout.state = state
        for name, value in fields.items():
            setattr(self.rollout, name, value)

    def fail(self, reason: str, state: str = RolloutState.FAILED) -> None:
        self.log.patience = ending_patience()
        try:
            self.log(f"{'ERROR' if state == RolloutState.FAILED else 'CANCELLED'}: {reason}")
            self.finish(state, reason)
        except RolloutLost:
            return
        except DatabaseUnavailable:
            logger.error("rollout %s: could not be marked %s (%s); the reaper will", self.rollout.pk, state, reason)
            return
        self.rollout.failure_reason = reason
        with_database(lambda: after_failure(self.rollout, say=self.say))


def after_failure(rollout: Rollout, say) -> None:
    """A deploy that failed (here, or as its worker died) or was cancelled: tell its promotion, and put
    the previous release back if the environment says so and the deploy changed what runs there."""
    rollouts.record_outcome(rollout, action=f"rollout.{rollout.state}", outcome="failed", reason=rollout.failure_reason)
    promotions.release_deployed(rollout)
    rollouts.auto_rollback(rollout, say=say)


def reap() -> dict:
    """The reaper's pass over rollouts (a Celery beat task): the lost and the never started are failed
    and rolled back like any failed rollout; queued ones whose message may be lost are enqueued again."""
    failed, requeued = rollouts.reap_stale_rollouts()
    for rollout in failed:
        after_failure(
            rollout,
            say=lambda text, pk=rollout.pk: supervision.append_line(Rollout(pk=pk), RolloutLogLine, f"==> {text}"),
        )
    return {"reaped": len(failed), "requeued": requeued}


def execute(*, rollout_id: int) -> None:
    now = timezone.now()
    # A database that is away when the message arrives delays the claim; one that stays away leaves
    # the rollout queued, for the reaper to enqueue again.
    if not with_database(
        lambda: Rollout.objects.filter(pk=rollout_id, state=RolloutState.QUEUED).update(
            state=RolloutState.APPLYING, started_at=now, heartbeat_at=now, worker=socket.gethostname()
        )
    ):
        logger.info("rollout %s: already claimed or finished; nothing to do", rollout_id)
        return
    rollout = with_database(
        lambda: Rollout.objects.select_related("environment__team", "model__team", "version", "build").get(
            pk=rollout_id
        )
    )
    runner = RolloutRunner(rollout)
    with Heartbeat(Rollout, rollout_id, RolloutState.running(), settings.BUILD_HEARTBEAT_SECONDS):
        try:
            runner.run()
        except RolloutLost:
            logger.warning("rollout %s: no longer running here", rollout_id)
        except targets.RolloutStopped as exc:
            runner.fail(str(exc), runner.stop_state)
        except DatabaseUnavailable as exc:
            runner.fail(str(exc))
        except (targets.TargetError, targets.TransientTargetError) as exc:
            runner.fail(str(exc))
        except SoftTimeLimitExceeded:
            runner.fail(f"The rollout exceeded its time limit of {settings.ROLLOUT_TIMEOUT} s.")
        except Exception as exc:
            logger.exception("rollout %s crashed", rollout_id)
            runner.log(traceback.format_exc())
            runner.fail(f"Internal error in the rollout worker: {type(exc).__name__}: {exc}")
