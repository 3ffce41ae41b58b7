"""Writes for the model registry. Views, serializers and tasks call these, never the ORM directly."""

import logging
import shutil
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Max
from django.dispatch import Signal
from django.utils import timezone

from accounts.models import Team
from accounts.permissions import Action, Actor, Refused, require
from audit.services import record
from registry import archives, validation
from registry.artifacts import ArtifactRejected, inspect_artifact
from registry.models import Framework, ModelVersion, RegisteredModel
from registry.tasks import inspect_version

logger = logging.getLogger(__name__)

INSPECTING, REJECTED = "inspecting", "rejected"

# Sent in the transaction that records a new version (or, for a version inspected on a worker, when
# its inspection has committed): listeners write their rows in it and enqueue work on commit. The
# deployments app listens to start a build; the registry does not import deployments, so this is the
# one place the dependency is turned around.
version_created = Signal()
# Sent before a prebuilt image version is recorded, with `team` and `reference`: the deployments app
# knows the team's registries and raises ValidationError({"image_reference": ...}) for another's image.
image_reference_checking = Signal()

MODEL_EDITABLE_FIELDS = ("description", "task", "auto_build")


def model_create(
    *, actor: Actor, team: Team, name: str, description: str = "", task: str = "", auto_build: bool = True
) -> RegisteredModel:
    require(actor, Action.CREATE_MODEL, team)
    model = RegisteredModel(
        team=team, name=name, description=description, task=task, auto_build=auto_build, created_by=actor.user
    )
    # The team's one-name-per-model constraint is left to the database, whose refusal below names
    # the field (`full_clean` would report it under `__all__`). The team and the user are rows in hand
    # (the policy has just read the user's role in that team): checking that they exist would read both again.
    model.full_clean(exclude=["team", "created_by"], validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            model.save()
            record(
                actor=actor,
                action="model.create",
                obj=model,
                after={"name": name, "task": task, "auto_build": auto_build},
            )
    except IntegrityError:
        raise ValidationError({"name": f"Team '{team.slug}' already has a model named '{name}'."}) from None
    return model


def model_update(*, actor: Actor, model: RegisteredModel, **changes) -> RegisteredModel:
    require(actor, Action.CHANGE_MODEL, model.team, obj=model)
    unknown = set(changes) - set(MODEL_EDITABLE_FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise ValidationError({field: "This field cannot be changed after the model is registered."})
    before = {field: getattr(model, field) for field in changes}
    for field, value in changes.items():
        setattr(model, field, value)
    model.full_clean(validate_unique=False)
    with transaction.atomic():
        model.save(update_fields=[*changes, "updated_at"])
        record(actor=actor, action="model.update", obj=model, before=before, after=changes)
    return model


def model_allow_build_network(*, actor: Actor, model: RegisteredModel, reason: str) -> RegisteredModel:
    """Let the model's builds use the network (an empty reason takes it back). The build host's network
    is the platform's, so only a site administrator decides, and the reason is shown on every build."""
    if not actor.user.is_superuser:
        event = record(
            actor=actor, action="model.build_network", obj=model, outcome="refused", reason="not a site admin"
        )
        raise Refused("Only a site administrator lets a model's builds use the network.", event=event)
    reason = reason.strip()
    with transaction.atomic():
        before = model.build_network_reason
        model.build_network_reason = reason[:300]
        model.save(update_fields=["build_network_reason", "updated_at"])
        record(
            actor=actor,
            action="model.build_network",
            obj=model,
            before={"build_network_reason": before},
            after={"build_network_reason": model.build_network_reason},
            flagged=bool(reason),
        )
    return model


def model_set_archived(*, actor: Actor, model: RegisteredModel, archived: bool) -> RegisteredModel:
    require(actor, Action.ARCHIVE_MODEL, model.team, obj=model)
    before = model.archived
    model.archived = archived
    model.archived_at = timezone.now() if archived else None
    with transaction.atomic():
        model.save(update_fields=["archived", "archived_at", "updated_at"])
        record(
            actor=actor,
            action="model.archive" if archived else "model.unarchive",
            obj=model,
            before={"archived": before},
            after={"archived": archived},
        )
    return model


def version_create(
    *,
    actor: Actor,
    model: RegisteredModel,
    framework: str,
    artifact=None,
    image_reference: str = "",
    label: str = "",
    requirements=(),
    metrics=None,
    parameters=None,
    signature=None,
    source_url: str = "",
    source_commit: str = "",
    tags=(),
    description: str = "",
) -> ModelVersion:
    """Register a new, immutable version with its artifact.

    `artifact` is an uploaded file that `registry.uploads.HashingUploadHandler` has already
    counted and hashed. It is inspected (never executed), stored, and only then recorded; if
    recording fails the stored file is removed again, so a failed upload leaves nothing behind.
    """
    require(actor, Action.UPLOAD_VERSION, model.team, obj=model)
    if model.archived:
        raise ValidationError({"model": "The model is archived; unarchive it before adding versions."})
    if framework not in Framework.values:
        raise ValidationError({"framework": f"Choose one of {', '.join(Framework.values)}."})

    fields = {
        "label": validation.clean_label(label),
        "requirements": validation.clean_requirements(
            list(requirements) if not isinstance(requirements, str) else requirements
        ),
        "metrics": validation.clean_metrics(metrics or {}),
        "parameters": validation.clean_parameters(parameters or {}),
        "signature": validation.clean_signature(signature),
        "source_url": source_url.strip(),
        "source_commit": validation.clean_commit(source_commit),
        "tags": validation.clean_tags(list(tags) if not isinstance(tags, str) else tags),
        "description": description,
    }
    if fields["label"] and model.versions.filter(label=fields["label"]).exists():
        raise ValidationError({"label": f"Version label '{fields['label']}' is already used in this model."})

    if framework == Framework.IMAGE:
        if artifact is not None:
            raise ValidationError({"artifact": "A prebuilt image version takes no artifact."})
        fields["image_reference"] = validation.clean_image_reference(image_reference)
        image_reference_checking.send(sender=ModelVersion, team=model.team, reference=fields["image_reference"])
        return _record_version(actor=actor, model=model, framework=framework, fields=fields, stored_name=None)

    if artifact is None:
        raise ValidationError({"artifact": "Upload the model artifact (a file, or a .tar.gz/.zip of a folder)."})
    name = Path(artifact.name).name
    sha256 = getattr(artifact, "sha256", None)
    if sha256 is None:
        raise ValidationError({"artifact": "The upload was not received through the hashing upload handler."})
    fields.update(artifact_name=name, artifact_sha256=sha256, artifact_size=artifact.size)
    if needs_worker_inspection(name, framework, artifact.size):
        # Listing a large archive decompresses all of it, and parsing ONNX reads the whole graph:
        # that runs on a worker, and the version says "inspecting" (and builds nothing) until then.
        fields["inspection"] = INSPECTING
    else:
        try:
            info = inspect_artifact(Path(artifact.temporary_file_path()), name, framework)
        except ArtifactRejected as exc:
            raise ValidationError({"artifact": str(exc)}) from None
        if info.signature and not fields["signature"]:
            fields["signature"] = info.signature
        fields["artifact_info"] = info.as_json()

    # Stored before the row exists, outside the transaction: object storage may be remote, and a
    # transaction should not wait on it. A random folder keeps concurrent uploads apart.
    stored_name = default_storage.save(
        f"artifacts/{model.team_id}/{model.pk}/{sha256}/{uuid.uuid4().hex}/{name}", artifact
    )
    try:
        return _record_version(actor=actor, model=model, framework=framework, fields=fields, stored_name=stored_name)
    except BaseException:
        _forget_unrecorded(stored_name)
        raise


def needs_worker_inspection(name: str, framework: str, size: int) -> bool:
    slow = archives.is_archive(name) or framework == Framework.ONNX
    return slow and size > settings.INLINE_INSPECTION_BYTES


def _enqueue_inspection(version: ModelVersion) -> None:
    try:
        inspect_version.delay(version.pk)
    except Exception:  # the broker is down: the version stays "inspecting" and is enqueued again later
        logger.exception("could not enqueue the inspection of %s", version)
        version.queued_for_later = True


def version_inspect(*, version_id: int) -> None:
    """A worker inspects a version's artifact (see needs_worker_inspection); then, as after an upload
    inspected at once, the version is announced (its automatic build starts)."""
    version = ModelVersion.objects.select_related("model__team", "created_by").get(pk=version_id)
    if version.inspection != INSPECTING:
        return  # done already (a redelivered task)
    try:
        with tempfile.TemporaryDirectory(prefix="slipway-inspect-") as folder:
            local = Path(folder) / version.artifact_name
            with version.artifact.open("rb") as source, open(local, "wb") as target:
                shutil.copyfileobj(source, target, 1024 * 1024)
            info = inspect_artifact(local, version.artifact_name, version.framework)
    except ArtifactRejected as exc:
        _finish_inspection(version, state=REJECTED, note=str(exc)[:500])
        return
    except SoftTimeLimitExceeded:
        _finish_inspection(
            version, state=REJECTED, note=f"Inspecting the artifact took longer than {settings.INSPECTION_TIMEOUT} s."
        )
        return
    changes: dict[str, Any] = {"artifact_info": info.as_json()}
    if info.signature and not version.signature:
        changes["signature"] = info.signature
    if _finish_inspection(version, state="", **changes):
        _announce(version, Actor(user=version.created_by))


def _announce(version: ModelVersion, actor: Actor) -> None:
    """Tell the listeners (the automatic build) of a new version. Inside the transaction recording the
    version, their rows commit with it, in one commit, and their work is enqueued once it has. What a
    listener fails at is undone alone (a savepoint) and never turns the upload into an error."""
    try:
        with transaction.atomic():
            version_created.send(sender=ModelVersion, version=version, actor=actor)
    except Exception:
        logger.exception("a listener of the new version %s failed", version)


def _finish_inspection(version: ModelVersion, *, state: str, note: str = "", **changes) -> bool:
    with transaction.atomic():
        done = ModelVersion.objects.filter(pk=version.pk, inspection=INSPECTING).update(
            inspection=state, inspection_note=note, **changes
        )
        if done:
            record(
                actor=None,
                action="version.inspect",
                obj=version,
                outcome="refused" if state == REJECTED else "succeeded",
                reason=note,
            )
    for key, value in changes.items():
        setattr(version, key, value)
    version.inspection, version.inspection_note = state, note
    return bool(done)


def reinspect_stuck(*, older_than_seconds: int = 300) -> int:
    """Enqueue again the inspections whose message may have been lost (the broker was down)."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    stuck = list(ModelVersion.objects.filter(inspection=INSPECTING, created_at__lt=cutoff).values_list("pk", flat=True))
    for pk in stuck:
        inspect_version.delay(pk)
    return len(stuck)


def _forget_unrecorded(stored_name: str) -> None:
    """Give back the stored file of a version that did not commit. A version that did commit keeps
    its file, whatever failed after; and when the database cannot say, the file stays too: a stray
    file costs some space, a version without its artifact can never be built again."""
    try:
        recorded = ModelVersion.objects.filter(artifact=stored_name).exists()
    except DatabaseError:
        logger.warning("kept %s: cannot tell whether its version was recorded", stored_name)
        return
    if not recorded:
        default_storage.delete(stored_name)


def _record_version(*, actor, model, framework, fields, stored_name) -> ModelVersion:
    try:
        with transaction.atomic():
            # The lock makes concurrent uploads take numbers one after another: 1, 2, 3, ...
            RegisteredModel.objects.select_for_update().only("pk").get(pk=model.pk)
            number = (model.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            version = ModelVersion(model=model, number=number, framework=framework, created_by=actor.user, **fields)
            if stored_name:
                version.artifact.name = stored_name
            version.save()
            record(
                actor=actor,
                action="version.create",
                obj=version,
                after={
                    "number": number,
                    "framework": framework,
                    "label": fields["label"],
                    "artifact_sha256": fields.get("artifact_sha256", ""),
                    "image_reference": fields.get("image_reference", ""),
                },
            )
            # A listener that could not enqueue its work sets `version.queued_for_later` on commit,
            # and the API answers 202.
            version.queued_for_later = False
            if version.inspection == INSPECTING:
                transaction.on_commit(lambda: _enqueue_inspection(version), robust=True)
            else:
                _announce(version, actor)
    except IntegrityError:
        raise ValidationError({"label": "This label was just taken by another upload; choose another."}) from None
    logger.info("registered %s by %s", version, actor.user)
    return version
