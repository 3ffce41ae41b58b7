"""Watching one Deployment rollout until it completes or fails, and explaining a failure to users.

It follows the Deployment and its pods with watches (kube_watch.Feed: resourceVersion, bookmarks, a new
list on 410 Gone), and decides whenever one of them changes, or at least every `poll_seconds`, so
should_stop() and the grace periods keep a fixed rhythm. The namespace's events (its largest list, read
whole) and the replica sets they are matched against are read at most every WATCHED_EVENTS_INTERVAL while
the watches show changes, and once more at the end. When the API will not let the Deployment and its pods
be watched, it polls them every `poll_seconds` instead, and the events every EVENTS_INTERVAL.

Only the rollout's own events are logged: all those of its new pods, and those of its Deployment,
replica sets and old pods that happened since the server stored the apply (its managedFields time;
timestamps have one-second steps, so an event of that same second counts as new; an old pod's event
stamped by a node whose clock is behind may be left out). Nothing is read before the apply to tell old
events from new.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from serving.contract import EXIT_LOAD_FAILED

from .base import (
    DeploySpec,
    LogFn,
    Progress,
    ProgressFn,
    RolloutStopped,
    StopFn,
    TargetError,
    log_tail,
    runtime_error,
    selector_labels,
)
from .kube_api import KubeApi
from .kube_watch import Feed, WatchUnavailable
from .manifests import CONTAINER_NAME, FIELD_MANAGER

__all__ = ["RolloutWatch"]

Obj = dict[str, Any]
LOG_TAIL_LINES = 30
LOG_READ_LINES = 500  # read more than shown: the kubelet's probes fill the runtime's access log
EVENTS_INTERVAL = 2.0
# Progress comes from the watches; events only add detail to the log. Read every 2 s, at twenty rollouts at
# once they and their replica sets were 12 of a rollout's 19 requests, and the largest ones.
WATCHED_EVENTS_INTERVAL = 10.0
EXPLAINED_PODS = 3
# The kubelet shows these only after it already retried (or cannot ever succeed): fail at once.
FATAL_WAITING = {
    "ImagePullBackOff": "Pods cannot pull the image",
    "InvalidImageName": "Pods cannot pull the image",
    "ErrImageNeverPull": "Pods cannot pull the image",
    "CreateContainerConfigError": "Pods cannot create the model container",
    "CreateContainerError": "Pods cannot create the model container",
    "CrashLoopBackOff": "The model server keeps crashing",
}
# A first pull failure may be a registry hiccup the kubelet's next attempt survives.
ERR_IMAGE_PULL = "ErrImagePull"


@dataclass
class Snapshot:
    deployment: Obj
    replicasets: list[Obj]
    pods: list[Obj]
    new_pods: list[Obj]
    events: list[Obj]

    @property
    def desired(self) -> int:
        return int(self.deployment.get("spec", {}).get("replicas", 1))

    def status(self, key: str) -> int:
        return int((self.deployment.get("status") or {}).get(key) or 0)

    def progress(self) -> Progress:
        return Progress(
            desired=self.desired,
            updated=self.status("updatedReplicas"),
            ready=self.status("readyReplicas"),
            available=self.status("availableReplicas"),
            message=(self.condition("Progressing") or {}).get("message", ""),
        )

    @property
    def observed(self) -> bool:
        status, meta = self.deployment.get("status") or {}, self.deployment["metadata"]
        return int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)

    def condition(self, kind: str) -> Obj | None:
        conditions = (self.deployment.get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c.get("type") == kind), None)

    def complete(self) -> bool:
        desired = self.desired
        counts = [self.status(key) for key in ("updatedReplicas", "readyReplicas", "availableReplicas")]
        return self.observed and all(count == desired for count in counts) and self.status("replicas") == desired

    def events_of(self, uids: set[str]) -> list[Obj]:
        mine = [e for e in self.events if (e.get("involvedObject") or {}).get("uid") in uids]
        return sorted(mine, key=_event_time)


@dataclass
class Failure:
    message: str
    pod: Obj | None = None
    container: str = ""
    crashed: bool = False
    load_failed: bool = False  # the runtime exited because the model cannot load: its error is the reason


@dataclass
class RolloutWatch:
    api: KubeApi
    spec: DeploySpec
    log: LogFn
    on_progress: ProgressFn
    should_stop: StopFn
    poll_seconds: float
    unschedulable_grace: float
    image_pull_grace: float
    stall_grace: float
    watch_seconds: int = 60  # how long one watch may stay open; 0: poll every poll_seconds instead
    _seen_events: set[str] = field(default_factory=set)
    _applied_at: datetime | None = None  # when the server stored the Deployment's apply (its clock)
    _first_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    _last_progress: tuple[int, ...] = ()
    _progressed_at: float = 0.0
    _events: list[Obj] = field(default_factory=list)
    _events_at: float = float("-inf")
    _replicasets: list[Obj] = field(default_factory=list)
    _replicasets_at: float = float("nan")
    _feeds: list[Feed] = field(default_factory=list)
    _changed: threading.Event = field(default_factory=threading.Event)
    _changes: int = 0  # watched changes since the events were last read

    @property
    def selector(self) -> str:
        return ",".join(f"{key}={value}" for key, value in selector_labels(self.spec.name, self.spec.model).items())

    def since_applied(self, deployment: Obj) -> None:
        """Log only the events from when the server stored this apply of the Deployment (its managedFields
        say when, by the server's clock). A server that does not say: the events that exist now are old."""
        times = [
            _timestamp(entry.get("time"))
            for entry in deployment["metadata"].get("managedFields") or []
            if entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
        ]
        self._applied_at = max((t for t in times if t is not None), default=None)
        if self._applied_at is None:
            self._seen_events = {e["metadata"].get("uid", "") for e in self.api.events(log=self.log)}
        self._events_at = time.monotonic()  # the next read is due an interval from now

    def run(self) -> None:
        self._progressed_at = time.monotonic()
        self._follow()
        try:
            while True:
                self._check_stop()
                snapshot = self._observe()
                self._report(snapshot)
                failure = self._failure(snapshot)
                if failure is not None or snapshot.complete():
                    # The end is decided: show (and decide on) every event up to now, not those of a while ago.
                    snapshot = self._observe(refresh=True)
                    self._report(snapshot)
                    failure = self._failure(snapshot)
                if failure is not None:
                    raise TargetError(self._explain(snapshot, failure))
                if snapshot.complete():
                    self.log(f"Rollout complete: {snapshot.desired} of {snapshot.desired} pods updated and available")
                    return
                self._wait()
        finally:
            for feed in self._feeds:
                feed.stop()

    def _follow(self) -> None:
        """Watch the Deployment and its pods; poll them when the API will not let them be watched."""
        if not self.watch_seconds:
            return
        feeds = [
            Feed(
                self.api,
                "Deployment",
                selectors={"field_selector": f"metadata.name={self.spec.name}"},
                changed=self._changed,
                log=self.log,
                seconds=self.watch_seconds,
            ),
            Feed(
                self.api,
                "Pod",
                selectors={"label_selector": self.selector},
                changed=self._changed,
                log=self.log,
                seconds=self.watch_seconds,
            ),
        ]
        try:
            for feed in feeds:
                feed.start()
                self._feeds.append(feed)
        except WatchUnavailable as error:
            self._fall_back(str(error))

    def _fall_back(self, reason: str) -> None:
        for feed in self._feeds:
            feed.stop()
        self._feeds = []
        self.log(f"Following the rollout by polling every {self.poll_seconds:g} s: {reason}")

    def _wait(self) -> None:
        """Until a watched object changes (or, polling, poll_seconds); at most poll_seconds either way, so
        should_stop() and the time-based checks keep their rhythm."""
        if not self._feeds:
            time.sleep(self.poll_seconds)
            return
        if self._changed.wait(self.poll_seconds):
            self._changes += 1
        self._changed.clear()
        broken = next((feed.failure for feed in self._feeds if feed.failure), "")
        if broken:
            self._fall_back(broken)

    def _check_stop(self) -> None:
        reason = self.should_stop()
        if reason:
            self.log(f"Rollout stopped: {reason} (the cluster keeps what was applied)")
            raise RolloutStopped(reason)

    # --- observing --------------------------------------------------------------------------------

    def _observe(self, *, refresh: bool = False) -> Snapshot:
        if self._feeds:
            deployment, pods = self._feeds[0].get(self.spec.name), self._feeds[1].objects()
        else:
            deployment = self.api.get("Deployment", self.spec.name, log=self.log)
            pods = self.api.pods(self.selector, log=self.log)
        if deployment is None:
            raise TargetError(f"The Deployment {self.spec.name} was deleted while it was rolling out.")
        template_labels = deployment["spec"]["template"].get("metadata", {}).get("labels") or {}
        owner = template_labels.get("slipway.io/deployment-id")
        if owner != str(self.spec.deployment_id):
            raise TargetError(
                f"The Deployment {self.spec.name} was changed by someone else (now deployment {owner or 'unknown'}) "
                "while this rollout was in progress."
            )
        events = self._recent_events(refresh=refresh)
        if self._events_at != self._replicasets_at:
            # Replica sets only matter to tell which events are this rollout's: read them with the events
            # (polling, they were read at every poll: 34 of a rollout's 123 requests at 20 at once).
            uid = deployment["metadata"].get("uid")
            listed = self.api.replicasets(self.selector, log=self.log)
            self._replicasets, self._replicasets_at = [rs for rs in listed if _owner_uid(rs) == uid], self._events_at
        pods = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        wanted = str(self.spec.deployment_id)
        new_pods = [p for p in pods if (p["metadata"].get("labels") or {}).get("slipway.io/deployment-id") == wanted]
        return Snapshot(deployment, self._replicasets, pods, new_pods, events)

    def _recent_events(self, *, refresh: bool = False) -> list[Obj]:
        # Watching, events are read again only after a watched object changed: a rollout that waits on a
        # slow cluster costs no requests while nothing happens. Polling, every EVENTS_INTERVAL.
        interval = WATCHED_EVENTS_INTERVAL if self._feeds else EVENTS_INTERVAL
        due = time.monotonic() - self._events_at >= interval and (self._changes or not self._feeds)
        if refresh or due:
            self._changes = 0
            self._events, self._events_at = self.api.events(log=self.log), time.monotonic()
        return self._events

    def _report(self, snapshot: Snapshot) -> None:
        uids = {snapshot.deployment["metadata"]["uid"]}
        uids |= {obj["metadata"]["uid"] for obj in snapshot.replicasets + snapshot.pods}
        new_pods = _uids(snapshot.new_pods)
        for event in snapshot.events_of(uids):
            uid = event["metadata"].get("uid", "")
            if uid not in self._seen_events and self._since_apply(event, new_pods):
                self._seen_events.add(uid)
                self.log(f"Event: {_describe_event(event)}")
        progress = snapshot.progress()
        key = (progress.desired, progress.updated, progress.ready, progress.available, snapshot.status("replicas"))
        if key != self._last_progress:
            self._last_progress, self._progressed_at = key, time.monotonic()
            old = max(snapshot.status("replicas") - progress.updated, 0)
            self.log(
                f"Replicas: {progress.desired} desired, {progress.updated} updated, {progress.ready} ready, "
                f"{progress.available} available" + (f", {old} old still running" if old else "")
            )
            self.on_progress(progress)

    def _since_apply(self, event: Obj, new_pods: set[str]) -> bool:
        if self._applied_at is None or (event.get("involvedObject") or {}).get("uid") in new_pods:
            return True
        happened = _timestamp(_last_time(event))
        return happened is None or happened >= self._applied_at

    # --- deciding ---------------------------------------------------------------------------------

    def _failure(self, snapshot: Snapshot) -> Failure | None:
        for pod in snapshot.new_pods:
            failure = self._pod_failure(pod)
            if failure is not None:
                return failure
        progressing = snapshot.condition("Progressing") or {}
        if snapshot.observed and progressing.get("reason") == "ProgressDeadlineExceeded":
            return Failure(self._deadline_message(snapshot, progressing))
        stalled = time.monotonic() - self._progressed_at
        if stalled > self.spec.progress_deadline_seconds + self.stall_grace:
            return Failure(
                f"The cluster reported no progress for {stalled:.0f} s and never flagged the rollout as stuck: "
                "is its controller manager running?"
            )
        return None

    def _pod_failure(self, pod: Obj) -> Failure | None:
        status = pod.get("status") or {}
        for container in status.get("containerStatuses") or []:
            ended = [(container.get(key) or {}).get("terminated") or {} for key in ("state", "lastState")]
            if any(run.get("exitCode") == EXIT_LOAD_FAILED for run in ended):
                # The runtime said the model cannot load, then exited: no restart can change that.
                message = f"The model server reported a load failure (exit code {EXIT_LOAD_FAILED})"
                return Failure(message, pod, container.get("name", ""), crashed=True, load_failed=True)
        for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason", "")
            persistent = reason == ERR_IMAGE_PULL and self._lasted(pod, reason, self.image_pull_grace)
            if reason in FATAL_WAITING or persistent:
                what = FATAL_WAITING.get(reason, "Pods cannot pull the image")
                detail = waiting.get("message") or ""
                return Failure(
                    f"{what}: {reason}" + (f": {detail}" if detail else ""),
                    pod,
                    container.get("name", ""),
                    crashed=reason == "CrashLoopBackOff",
                )
        for condition in status.get("conditions") or []:
            unschedulable = (
                condition.get("type") == "PodScheduled"
                and condition.get("status") == "False"
                and condition.get("reason") == "Unschedulable"
            )
            if unschedulable and self._lasted(pod, "Unschedulable", self.unschedulable_grace):
                return Failure(f"Pods cannot be scheduled: Unschedulable: {condition.get('message', '')}", pod)
        return None

    def _lasted(self, pod: Obj, reason: str, grace: float) -> bool:
        """Whether the pod has shown this reason for longer than grace (measured from when we first saw it)."""
        first = self._first_seen.setdefault((pod["metadata"]["uid"], reason), time.monotonic())
        return time.monotonic() - first >= grace

    def _deadline_message(self, snapshot: Snapshot, progressing: Obj) -> str:
        ready = sum(1 for pod in snapshot.new_pods if _pod_ready(pod))
        message = (
            f"The rollout made no progress for {self.spec.progress_deadline_seconds} s: ProgressDeadlineExceeded: "
            f"{progressing.get('message', '')} ({ready} of {snapshot.desired} new pods ready)"
        )
        warnings = [e for e in snapshot.events_of(_uids(snapshot.new_pods)) if e.get("type") == "Warning"]
        if warnings:
            message += f"; last warning: {warnings[-1].get('reason')}: {warnings[-1].get('message', '')}"
        return message

    # --- explaining -------------------------------------------------------------------------------

    def _explain(self, snapshot: Snapshot, failure: Failure) -> str:
        """Log what a user needs to see (pod states, events, container logs); return the failure reason."""
        self.log(f"Rollout failed: {failure.message}")
        first = [failure.pod] if failure.pod is not None else []
        pods = first + [p for p in snapshot.new_pods if p["metadata"]["uid"] not in _uids(first)]
        message = failure.message
        for pod in pods[:EXPLAINED_PODS]:
            self._log_pod(snapshot, pod)
            error = self._log_container_output(pod, failure.container if pod is failure.pod else "")
            if failure.load_failed and pod is failure.pod and error:
                message = f"{failure.message}: {error}"
            elif failure.crashed and pod is failure.pod and error:
                message = f"{_crash_summary(pod, failure.container)}: {error}"
        return message

    def _log_pod(self, snapshot: Snapshot, pod: Obj) -> None:
        name, status = pod["metadata"]["name"], pod.get("status") or {}
        self.log(f"Pod {name}: {status.get('phase', 'Unknown')}")
        for container in status.get("containerStatuses") or []:
            self.log(f"  container {container.get('name')}: {_describe_container(container)}")
        for event in snapshot.events_of({pod["metadata"]["uid"]}):
            self.log(f"  {event.get('type', '')} {event.get('reason', '')}: {event.get('message', '')}")

    def _log_container_output(self, pod: Obj, container: str) -> str:
        """Log the last lines of a started container (the crashed run when it restarted); return the error
        they end with (see runtime_error)."""
        statuses = {s.get("name"): s for s in (pod.get("status") or {}).get("containerStatuses") or []}
        name = container or (CONTAINER_NAME if CONTAINER_NAME in statuses else next(iter(statuses), ""))
        status = statuses.get(name)
        if status is None or not (status.get("containerID") or status.get("restartCount")):
            return ""  # never started: there is no output to show
        previous = int(status.get("restartCount") or 0) > 0
        text = self.api.pod_log(pod["metadata"]["name"], name, previous=previous, tail=LOG_READ_LINES, log=self.log)
        lines = log_tail(text, LOG_TAIL_LINES)
        which = "previous run" if previous else "current run"
        self.log(f"  last {len(lines)} log lines of {name} ({which}):")
        for line in lines:
            self.log(f"  | {line}")
        return runtime_error(lines) if not text.startswith("(no log") else ""


def _owner_uid(obj: Obj) -> str | None:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")]
    return refs[0].get("uid") if refs else None


def _uids(objects: list[Obj]) -> set[str]:
    return {obj["metadata"]["uid"] for obj in objects}


def _pod_ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _event_time(event: Obj) -> tuple[str, int]:
    """When it first happened, then the order the server stored it in (timestamps have one-second steps)."""
    meta = event["metadata"]
    stamp = event.get("firstTimestamp") or event.get("eventTime") or meta.get("creationTimestamp") or ""
    version = str(meta.get("resourceVersion", ""))
    return str(stamp), int(version) if version.isdigit() else 0


def _last_time(event: Obj) -> str:
    series = event.get("series") or {}
    return str(
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp")
        or ""
    )


def _timestamp(text: object) -> datetime | None:
    """An API timestamp to the second (MicroTime has fractions, Time has none), or None."""
    try:
        moment = datetime.fromisoformat(str(text)).replace(microsecond=0)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _describe_event(event: Obj) -> str:
    involved = event.get("involvedObject") or {}
    count = int(event.get("count") or 1)
    repeated = f" (x{count})" if count > 1 else ""
    return (
        f"{event.get('type', 'Normal')} {involved.get('kind', '')}/{involved.get('name', '')}: "
        f"{event.get('reason', '')}: {event.get('message', '')}{repeated}"
    )


def _describe_container(status: Obj) -> str:
    state = status.get("state") or {}
    restarts = int(status.get("restartCount") or 0)
    if "waiting" in state:
        text = f"waiting ({state['waiting'].get('reason', '')})"
    elif "terminated" in state:
        text = f"terminated ({state['terminated'].get('reason', '')}, exit code {state['terminated'].get('exitCode')})"
    else:
        text = "running" + (", ready" if status.get("ready") else ", not ready")
    last = (status.get("lastState") or {}).get("terminated")
    if last:
        text += f"; last run ended {last.get('reason', '')} with exit code {last.get('exitCode')}"
    return text + (f"; {_plural(restarts, 'restart')}" if restarts else "")


def _crash_summary(pod: Obj, container: str) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    status: Obj = next((s for s in statuses if s.get("name") == container), {})
    last = (status.get("lastState") or {}).get("terminated") or {}
    exit_code = last.get("exitCode")
    reason = last.get("reason")
    how = f"exit code {exit_code}" + (f", {reason}" if reason and reason != "Error" else "")
    restarts = int(status.get("restartCount") or 0)
    return f"The model server keeps crashing: CrashLoopBackOff ({how}, {_plural(restarts, 'restart')})"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
