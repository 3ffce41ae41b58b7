"""Runs one build: prepare the context, build the image, push it, record the digest.

Called by the `run_build` task with a build id. The build is claimed with a conditional update,
so a redelivered task does nothing; every step change is another conditional update, so a build
that the reaper already failed is never resurrected. No database transaction is held while the
engine or the registry is talked to.
"""

import logging
import shutil
import socket
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from deployments.imaging.context import BuildSpec, prepare_context, runtime_component
from deployments.imaging.engine import DockerEngine
from deployments.imaging.errors import BuildContextError, Cancelled, ImageError, TransientError
from deployments.imaging.packages import debian_packages, python_packages
from deployments.imaging.smoke import smoke_test
from deployments.logs import LogWriter
from deployments.models import Build, BuildLogLine, BuildState
from deployments.models.builds import repository_of
from deployments.outbound import OutboundRefused
from deployments.selectors.registries import image_sources_for
from deployments.selectors.vulnerabilities import database_status
from deployments.services import promotions, vulnerabilities
from deployments.supervision import DatabaseUnavailable, Heartbeat, ending_patience, with_database
from registry.models import Framework
from registry.units import human_size

logger = logging.getLogger(__name__)


class StepLost(Exception):
    """The build left the state this runner expected (failed by the reaper): stop quietly."""


class BuildRunner:
    def __init__(self, build: Build):
        self.build = build
        self.version = build.version
        self.log = LogWriter(BuildLogLine, build)
        self.deadline = time.monotonic() + settings.BUILD_TIMEOUT
        self.stop_state = BuildState.CANCELLED
        self.workdir = Path(settings.BUILD_WORKDIR) / str(build.pk)
        self.engine = DockerEngine(settings.DOCKER_HOST, timeout=settings.DOCKER_TIMEOUT)

    # -- the steps -------------------------------------------------------------------------

    def run(self) -> None:
        version = self.version
        self.say(
            f"Build #{self.build.pk} of {version.model.team.slug}/{version.model.name} "
            f"{version.display_name} ({version.get_framework_display()}) on {socket.gethostname()}"
        )
        if version.framework == Framework.IMAGE:
            return self.record_prebuilt_image()

        registry = self.build.registry
        if registry is None:
            raise ImageError("No container registry is configured for this team.")
        try:
            settings.OUTBOUND_POLICY.check_registry(registry.host)
        except OutboundRefused as refused:
            raise ImageError(str(refused)) from None
        self.say(f"Checking the registry {registry.host} and its credentials")
        self.with_retries("reaching the registry", lambda: self.engine.check_registry_login(registry))
        self.check_stop()
        context = self.prepare()

        self.enter(BuildState.BUILDING)
        repository = registry.repository_for(version.model.team.slug, version.model.name)
        tag = f"v{version.number}-b{self.build.pk}"
        reference = f"{repository}:{tag}"
        self.say(f"Building {reference} from {settings.BASE_IMAGE}")
        if self.build.network_reason:
            self.say(f"Network allowed for this build by a site administrator: {self.build.network_reason}")
        else:
            self.say("No network for this build's RUN steps")
        image_id = self.engine.build_image(
            context=context.path,
            dockerfile=context.dockerfile,
            tag=reference,
            labels=context.labels,
            log=self.log,
            should_stop=self.should_stop,
            network_mode=None if self.build.network_reason else "none",
        )
        size = self.engine.image_size(image_id)
        self.say(f"Built image {image_id[:19]} ({human_size(size)})")
        # The image's Debian packages are read while the smoke test runs: neither waits for the other.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dpkg-{self.build.pk}") as reader:
            reading = reader.submit(self.read_debian_packages, image_id)
            if version.framework != Framework.CUSTOM:  # a custom image carries its own server, not our probe
                self.enter(BuildState.TESTING)  # its own step: how long the smoke test took is shown apart
                self.smoke_test(image_id)
            bill = self.bill_of_materials(context.bill_of_materials, *reading.result())

        self.enter(BuildState.PUSHING)
        auth = registry.auth_config
        if self.with_retries("checking the tag", lambda: self.engine.tag_exists(reference, auth)):
            raise ImageError(f"The tag {reference} already exists in the registry; tags are never overwritten.")
        self.say(f"Pushing {reference}")
        digest, _ = self.with_retries(
            "pushing the image", lambda: self.engine.push_image(repository=repository, tag=tag, auth=auth, log=self.log)
        )
        self.say(f"Pushed {repository}@{digest}")
        self.scan(bill)
        self.succeed(image_reference=reference, image_digest=digest, image_size=size, bill_of_materials=bill)

    def prepare(self):
        version = self.version
        shutil.rmtree(self.workdir, ignore_errors=True)
        artifact_dir = self.workdir / "artifact"
        artifact_dir.mkdir(parents=True)
        artifact_path = artifact_dir / version.artifact_name
        self.say(f"Fetching the artifact {version.artifact_name} ({version.artifact_size:,} bytes)")
        try:
            with version.artifact.open("rb") as source, open(artifact_path, "wb") as target:
                shutil.copyfileobj(source, target, 1024 * 1024)
        except FileNotFoundError:
            # Said without the storage's path, which is the platform's business, not the user's.
            logger.exception("build %s: the artifact of %s is missing from storage", self.build.pk, version)
            raise BuildContextError(
                f"The artifact {version.artifact_name} of {version.display_name} is missing from the artifact "
                "storage; upload the version again."
            ) from None
        spec = BuildSpec(
            team=version.model.team.slug,
            model=version.model.name,
            version=version.number,
            framework=version.framework,
            artifact_path=artifact_path,
            artifact_name=version.artifact_name,
            artifact_sha256=version.artifact_sha256,
            requirements=tuple(version.requirements),
            signature=version.signature,
            source_commit=version.source_commit,
            build_id=self.build.pk,
            base_image=settings.BASE_IMAGE,
            image_sources=image_sources_for(version.model.team),
        )
        self.say("Resolving dependencies and preparing the build context")
        context = prepare_context(spec, self.workdir / "context", wheel_cache=Path(settings.WHEEL_CACHE), log=self.log)
        if context.bill_of_materials:
            self.say(f"{len(context.bill_of_materials)} packages will be installed (see the bill of materials)")
        return context

    def smoke_test(self, image_id: str) -> None:
        self.say("Smoke test: starting the image as a rollout would, without network, until it answers")
        client, name = self.engine.client(), f"b{self.build.pk}"
        verdict = smoke_test(client=client, image=image_id, name=name, log=self.log, should_stop=self.should_stop)
        self.say(f"Smoke test passed in {verdict.seconds:.1f} s: {verdict.summary}")

    def read_debian_packages(self, image_id: str) -> tuple[str, list, float]:
        """(the Debian release, its packages, seconds taken): on a thread of its own, with its own client."""
        client, started = self.engine.client(), time.monotonic()
        try:
            ecosystem, packages = debian_packages(client, image_id)
        finally:
            client.close()
        return ecosystem, packages, time.monotonic() - started

    def bill_of_materials(self, python_packages: list[dict], ecosystem: str, packages: list, seconds: float) -> list:
        """The wheels installed, the serving runtime, and the image's Debian packages (from its dpkg status)."""
        bill = [{**item, "ecosystem": "PyPI"} for item in python_packages]
        if self.version.framework not in (Framework.CUSTOM, Framework.IMAGE):  # our runtime is in images we build
            bill.append(runtime_component())
        if packages and ecosystem:
            bill.extend(
                {
                    "ecosystem": ecosystem,
                    "name": p.name,
                    "version": p.version,
                    "arch": p.architecture,
                    "source": p.source,
                    "source_version": p.source_version,
                }
                for p in packages
            )
            self.say(
                f"The image holds {len(packages)} Debian packages ({ecosystem}); all are in the bill of materials "
                f"(read from its dpkg status in {seconds:.2f} s, beside the smoke test)"
            )
        elif packages:
            self.say(f"The image holds {len(packages)} dpkg packages of a release the scanner does not know")
        else:
            self.say("The image has no dpkg status: no Debian packages to list")
        return bill

    def scan(self, bill: list[dict]) -> None:
        """Check every package against the vulnerability database, before the build counts as succeeded."""
        status = with_database(database_status)
        if not status.configured:
            self.say("No vulnerability database is configured (SLIPWAY_VULN_DB): the image is not scanned")
            return
        if status.refreshed_at is None:
            self.say("The vulnerability database has not been loaded yet: the image is not scanned")
            return
        result = with_database(lambda: vulnerabilities.scan_build(self.build, bill))
        counts = ", ".join(f"{n} {severity}" for severity, n in reversed(result.counts.items()) if n) or "none"
        self.say(
            f"Scanned {len(vulnerabilities.installed_packages(bill))} packages against {status.advisory_count:,} "
            f"advisories (refreshed {status.refreshed_at:%Y-%m-%d %H:%M} UTC) in {result.seconds:.2f} s: "
            f"{result.findings} vulnerabilities ({counts})"
        )

    def record_prebuilt_image(self) -> None:
        reference = self.version.image_reference
        registry = self.build.registry
        # Checked again here: a version recorded before the rule would otherwise borrow our credentials.
        if not image_sources_for(self.version.model.team).allows(reference):
            raise ImageError(f"{reference} is not in the team's repositories; it is not looked up or deployed.")
        auth = registry.auth_config if registry and reference.startswith(registry.host + "/") else None
        self.say(f"Prebuilt image: looking up {reference} in its registry (nothing is built)")
        digest = self.with_retries("looking up the image", lambda: self.engine.remote_digest(reference, auth))
        self.say(f"{reference} is {digest}")
        # Scanned as a built image is (the vulnerability gate needs it): what it holds is read from the image.
        pinned = f"{repository_of(reference)}@{digest}"
        self.say(f"Pulling {pinned} to list what it holds")
        self.with_retries("pulling the image", lambda: self.engine.pull_image(pinned, auth))
        self.check_stop()
        client = self.engine.client()
        try:
            python = python_packages(client, pinned)
        finally:
            client.close()
        if python is None:
            self.say("The image has no python3 on its PATH: no Python packages to list")
        else:
            self.say(f"The image's python3 sees {len(python)} Python packages; all are in the bill of materials")
        bill = self.bill_of_materials(python or [], *self.read_debian_packages(pinned))
        self.scan(bill)
        self.succeed(
            image_reference=reference,
            image_digest=digest,
            image_size=self.engine.image_size(pinned),
            bill_of_materials=bill,
        )

    # -- state changes ------------------------------------------------------------------------

    def say(self, text: str) -> None:
        self.log(f"==> {text}")
        self.log.flush()

    def enter(self, state: str) -> None:
        now = timezone.now()
        steps = self.close_step(now)
        steps[state] = {"started": now.isoformat()}
        if not with_database(
            lambda: Build.objects.filter(pk=self.build.pk, state=self.build.state).update(
                state=state, steps=steps, heartbeat_at=now
            )
        ):
            raise StepLost()
        self.build.state, self.build.steps = state, steps

    def close_step(self, now) -> dict:
        steps = dict(self.build.steps)
        current = steps.get(self.build.state)
        if current and "finished" not in current:
            current["finished"] = now.isoformat()
            started = datetime.fromisoformat(current["started"])
            current["seconds"] = round((now - started).total_seconds(), 2)
        return steps

    def succeed(self, **fields) -> None:
        # Said before the state is stored: a script following the log stops at the final state
        # (deployments.logs.log_response), so a line written after it would never reach that script.
        self.say("Build succeeded")
        self.finish(BuildState.SUCCEEDED, "", **fields)
        with_database(self.build.refresh_from_db)
        if with_database(lambda: promotions.rebind_to_new_build(self.build)):
            self.say("Pending promotions of this version now point at the new digest; their approvals are void")

    def finish(self, state: str, reason: str, **fields) -> None:
        self.log.flush()
        now = timezone.now()
        updated = with_database(
            lambda: Build.objects.filter(pk=self.build.pk, state__in=BuildState.running()).update(
                state=state, failure_reason=reason[:500], finished_at=now, steps=self.close_step(now), **fields
            ),
            limit=ending_patience(),
        )
        if not updated:
            raise StepLost()
        self.build.state = state

    # -- stopping and retrying ------------------------------------------------------------------

    def should_stop(self) -> str | None:
        if time.monotonic() > self.deadline:
            self.stop_state = BuildState.FAILED
            return f"The build exceeded its time limit of {settings.BUILD_TIMEOUT} s."
        state, cancel = with_database(
            lambda: Build.objects.filter(pk=self.build.pk).values_list("state", "cancel_requested").get()
        )
        if state not in BuildState.running():
            raise StepLost()
        if cancel:
            self.stop_state = BuildState.CANCELLED
            return "Cancelled at the user's request."
        return None

    def check_stop(self) -> None:
        reason = self.should_stop()
        if reason:
            raise Cancelled(reason)

    def with_retries(self, doing: str, call):
        attempts = settings.BUILD_RETRIES
        for attempt in range(1, attempts + 1):
            try:
                return call()
            except TransientError as exc:
                if attempt == attempts:
                    raise ImageError(f"{exc} (gave up after {attempts} attempts)") from None
                delay = settings.BUILD_RETRY_BACKOFF * 2 ** (attempt - 1)
                self.say(f"{exc} Retrying {doing} in {delay:g} s (attempt {attempt + 1} of {attempts}).")
                end = time.monotonic() + delay
                while time.monotonic() < end:
                    self.check_stop()
                    time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        raise AssertionError("unreachable")


def execute(*, build_id: int) -> None:
    now = timezone.now()
    # A database that is away when the message arrives delays the claim; one that stays away leaves
    # the build queued, for the reaper to enqueue again.
    claimed = with_database(
        lambda: Build.objects.filter(pk=build_id, state=BuildState.QUEUED).update(
            state=BuildState.PREPARING,
            started_at=now,
            heartbeat_at=now,
            worker=socket.gethostname(),
            steps={BuildState.PREPARING: {"started": now.isoformat()}},
        )
    )
    if not claimed:
        logger.info("build %s: already claimed or finished; nothing to do", build_id)
        return
    build = with_database(lambda: Build.objects.select_related("version__model__team", "registry").get(pk=build_id))
    runner = BuildRunner(build)
    try:
        with Heartbeat(Build, build_id, BuildState.running(), settings.BUILD_HEARTBEAT_SECONDS):
            _run(runner)
    finally:
        shutil.rmtree(runner.workdir, ignore_errors=True)


def _run(runner: BuildRunner) -> None:
    """Runs the build and turns every way it can end into a final state with a reason."""
    try:
        runner.run()
    except StepLost:
        logger.warning("build %s: no longer running here (reaped or finished elsewhere)", runner.build.pk)
    except Cancelled as exc:
        _finish_quietly(runner, runner.stop_state, str(exc))
    except ImageError as exc:
        _finish_quietly(runner, BuildState.FAILED, str(exc))
    except DatabaseUnavailable as exc:
        _finish_quietly(runner, BuildState.FAILED, str(exc))
    except SoftTimeLimitExceeded:
        _finish_quietly(runner, BuildState.FAILED, f"The build exceeded its time limit of {settings.BUILD_TIMEOUT} s.")
    except Exception as exc:
        logger.exception("build %s crashed", runner.build.pk)
        runner.log(traceback.format_exc())
        _finish_quietly(runner, BuildState.FAILED, f"Internal error in the build worker: {type(exc).__name__}: {exc}")


def _finish_quietly(runner: BuildRunner, state: str, reason: str) -> None:
    runner.log.patience = ending_patience()
    try:
        runner.log(f"{'ERROR' if state == BuildState.FAILED else 'CANCELLED'}: {reason}")
        runner.finish(state, reason)
    except StepLost:
        logger.warning("build %s: finished elsewhere before it could be marked %s", runner.build.pk, state)
    except DatabaseUnavailable:
        logger.error("build %s: could not be marked %s (%s); the reaper will", runner.build.pk, state, reason)
