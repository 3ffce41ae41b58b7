"""Prepares a Docker build context for one model version: the model, its wheels, the runtime, a Dockerfile.

Pure Python with no Django import: the build runner (deployments.runners.builds) calls ``prepare_context``
and hands the result to the Docker engine (deployments.imaging.engine). Wheels are resolved on the host
(see deployments.imaging.wheels); archives are checked and extracted by registry.archives, the same
rules the upload was checked with.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import serving
from deployments.imaging.errors import BuildContextError
from deployments.imaging.sources import ImageSources, check_dockerfile
from deployments.imaging.wheels import bill_of_materials, ensure_wheels, link_or_copy_all, lock_file, wheel_cache_key
from registry import archives
from serving.contract import DATATYPES, ONNX_SUFFIXES, SKLEARN_SUFFIXES

__all__ = [
    "FRAMEWORKS",
    "RUNTIME_SOURCE",
    "BuildContextError",
    "BuildSpec",
    "PreparedContext",
    "extract_archive",
    "prepare_context",
    "runtime_component",
    "wheel_cache_key",
]

FRAMEWORKS = ("sklearn", "onnx", "python", "custom")
MAX_DOCKERFILE_BYTES = 256 * 1024
RUNTIME_CONFIG = "slipway.json"

_HERE = Path(__file__).resolve().parent
# The serving runtime copied into every image: the one place that names where it lives.
RUNTIME_SOURCE = Path(serving.__file__).resolve().parent  # the serving package, copied whole
DOCKERFILE_TEMPLATE = _HERE / "templates" / "Dockerfile.template"

# Deliberately narrower than Docker's reference grammar: the value is written into the FROM lines.
_IMAGE_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._\-/:]*(?:@sha256:[0-9a-f]{64})?$", re.IGNORECASE)


@dataclass(frozen=True)
class BuildSpec:
    team: str
    model: str
    version: int
    framework: str  # sklearn | onnx | python | custom
    artifact_path: Path
    artifact_name: str
    artifact_sha256: str
    requirements: tuple[str, ...]
    signature: dict[str, Any]
    source_commit: str
    build_id: int
    base_image: str
    # What a custom Dockerfile may name; None: the base image alone.
    image_sources: ImageSources | None = None


@dataclass
class PreparedContext:
    path: Path
    dockerfile: str
    bill_of_materials: list[dict[str, str]] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)


def prepare_context(
    spec: BuildSpec, workdir: Path, *, wheel_cache: Path, log: Callable[[str], None]
) -> PreparedContext:
    """Lays out ``workdir/context`` (replacing any earlier one) and returns what the build needs."""
    _validate_spec(spec)
    context = workdir / "context"
    if context.exists():
        shutil.rmtree(context)
    context.mkdir(parents=True)
    labels = image_labels(spec)
    if spec.framework == "custom":
        return _prepare_custom(spec, context, labels, log)

    log(f"placing the model artifact {spec.artifact_name!r}")
    model_dir = context / "model"
    model_dir.mkdir()
    artifact = _place_model(spec, model_dir)
    _write_json(model_dir / RUNTIME_CONFIG, runtime_config(spec, artifact))

    cached_wheels = ensure_wheels(spec.framework, spec.requirements, wheel_cache, log)
    wheels_dir = context / "wheels"
    link_or_copy_all(sorted(cached_wheels.glob("*.whl")), wheels_dir)
    bill = bill_of_materials(wheels_dir)
    (context / "requirements.lock").write_text(lock_file(bill), encoding="utf-8")

    _copy_runtime(context)
    (context / "Dockerfile").write_text(render_dockerfile(spec.base_image), encoding="utf-8")
    _normalise_permissions(context, skip=wheels_dir)
    log(f"build context ready: {len(bill)} wheels, Dockerfile generated")
    return PreparedContext(path=context, dockerfile="Dockerfile", bill_of_materials=bill, labels=labels)


def _prepare_custom(
    spec: BuildSpec, context: Path, labels: dict[str, str], log: Callable[[str], None]
) -> PreparedContext:
    if not archives.is_archive(spec.artifact_name):
        raise BuildContextError(
            "a custom model must be uploaded as a .tar.gz, .tgz or .zip archive with a Dockerfile at its root"
        )
    extract_archive(spec.artifact_path, spec.artifact_name, context)
    dockerfile = context / "Dockerfile"
    if not dockerfile.is_file() or dockerfile.is_symlink():
        raise BuildContextError("the custom model's archive has no Dockerfile at its root")
    if dockerfile.stat().st_size > MAX_DOCKERFILE_BYTES:
        raise BuildContextError(f"the custom model's Dockerfile is larger than {MAX_DOCKERFILE_BYTES:,} bytes")
    sources = spec.image_sources or ImageSources(base_images=(spec.base_image,), own_prefixes=())
    check_dockerfile(dockerfile.read_text(encoding="utf-8", errors="replace"), sources)
    log("custom model: building with the archive's own Dockerfile")
    return PreparedContext(path=context, dockerfile="Dockerfile", bill_of_materials=[], labels=labels)


# ---------------------------------------------------------------------------------------------------
# Spec checks, labels and the files the image reads


def _validate_spec(spec: BuildSpec) -> None:
    if spec.framework not in FRAMEWORKS:
        raise BuildContextError(f"framework {spec.framework!r} is not one of {', '.join(FRAMEWORKS)}")
    if not Path(spec.artifact_path).is_file():
        raise BuildContextError(f"the model artifact {spec.artifact_name!r} is missing on the build worker")
    if len(spec.base_image) > 255 or not _IMAGE_REFERENCE.match(spec.base_image):
        raise BuildContextError(f"base image {spec.base_image!r} is not a valid image reference")
    if spec.framework != "custom":
        _validate_signature(spec.signature)


def _validate_signature(signature: dict[str, Any] | None) -> None:
    if signature is None:
        return
    if not isinstance(signature, dict):
        raise BuildContextError("the model signature must be an object with 'inputs' and 'outputs' lists")
    for where in ("inputs", "outputs"):
        tensors = signature.get(where, [])
        if not isinstance(tensors, list):
            raise BuildContextError(f"the model signature's {where!r} must be a list")
        for index, tensor in enumerate(tensors):
            if not _valid_tensor_spec(tensor):
                raise BuildContextError(
                    f"signature {where}[{index}] needs a 'name', a known 'datatype' and a 'shape' of integers"
                )


def _valid_tensor_spec(tensor: object) -> bool:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) or not tensor["name"]:
        return False
    datatype = tensor.get("datatype", "")
    shape = tensor.get("shape", [])
    return (
        (datatype == "" or datatype in DATATYPES)
        and isinstance(shape, list)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape)
    )


def image_labels(spec: BuildSpec) -> dict[str, str]:
    return {
        "org.opencontainers.image.title": f"{spec.team}/{spec.model}",
        "org.opencontainers.image.version": str(spec.version),
        "org.opencontainers.image.revision": spec.source_commit,
        "io.slipway.team": spec.team,
        "io.slipway.model": spec.model,
        "io.slipway.version": str(spec.version),
        "io.slipway.framework": spec.framework,
        "io.slipway.artifact-sha256": spec.artifact_sha256,
        "io.slipway.build-id": str(spec.build_id),
        "io.slipway.source-commit": spec.source_commit,
    }


def runtime_config(spec: BuildSpec, artifact: str) -> dict[str, Any]:
    signature = spec.signature or {}
    return {
        "name": spec.model,
        "version": str(spec.version),
        "framework": spec.framework,
        "artifact": artifact,
        "signature": {
            "inputs": list(signature.get("inputs", [])),
            "outputs": list(signature.get("outputs", [])),
        },
    }


def render_dockerfile(base_image: str) -> str:
    if not _IMAGE_REFERENCE.match(base_image):
        raise BuildContextError(f"base image {base_image!r} is not a valid image reference")
    return DOCKERFILE_TEMPLATE.read_text(encoding="utf-8").replace("@@BASE_IMAGE@@", base_image)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------
# The model artifact


@lru_cache(maxsize=1)
def runtime_component() -> dict[str, str]:
    """The serving runtime as a bill-of-materials item; its version is a digest of its source files."""
    digest = hashlib.sha256()
    for path in sorted(RUNTIME_SOURCE.rglob("*.py")):
        digest.update(path.relative_to(RUNTIME_SOURCE).as_posix().encode() + b"\0" + path.read_bytes())
    return {"ecosystem": "generic", "name": "slipway-serving", "version": digest.hexdigest()[:16]}


def _copy_runtime(context: Path) -> None:
    shutil.copytree(RUNTIME_SOURCE, context / "runtime" / "serving", ignore=shutil.ignore_patterns("__pycache__"))


def _place_model(spec: BuildSpec, model_dir: Path) -> str:
    """Puts the artifact into model_dir and returns its path there, as slipway.json's 'artifact'."""
    if archives.is_archive(spec.artifact_name):
        extract_archive(spec.artifact_path, spec.artifact_name, model_dir)
        if (model_dir / RUNTIME_CONFIG).exists():
            raise BuildContextError(f"the archive must not hold {RUNTIME_CONFIG} at its root: Slipway writes it")
        return _find_artifact(spec.framework, model_dir)
    # A fixed file name keeps user-chosen names out of paths; only the suffix matters to loaders.
    suffix = Path(spec.artifact_name).suffix.lower()
    if spec.framework == "python":
        if suffix != ".py":
            raise BuildContextError("a python model must be a model.py file or an archive that contains one")
        target = "model.py"
    elif spec.framework == "onnx":
        target = "model.onnx"
    else:
        target = "model" + (suffix if suffix in SKLEARN_SUFFIXES else ".joblib")
    shutil.copyfile(spec.artifact_path, model_dir / target)
    return "." if spec.framework == "python" else target


def _find_artifact(framework: str, model_dir: Path) -> str:
    files = [p for p in sorted(model_dir.rglob("*")) if p.is_file() and not p.is_symlink()]
    if framework == "python":
        candidates = [p for p in files if p.name == "model.py"]
        if (model_dir / "model.py").is_file():
            return "."
        if len(candidates) != 1:
            raise BuildContextError(
                f"a python model's archive needs one model.py (at its root), found {len(candidates)}"
            )
        return candidates[0].parent.relative_to(model_dir).as_posix()
    suffixes = ONNX_SUFFIXES if framework == "onnx" else SKLEARN_SUFFIXES
    candidates = [p for p in files if p.suffix.lower() in suffixes]
    if len(candidates) != 1:
        raise BuildContextError(
            f"the archive must hold exactly one {'/'.join(suffixes)} file for a {framework} model, "
            f"found {len(candidates)} (use the python framework for several)"
        )
    return candidates[0].relative_to(model_dir).as_posix()


def extract_archive(archive: Path, name: str, dest: Path) -> None:
    """Extracts an archive artifact into dest, refusing it as the upload would have (registry.archives)."""
    try:
        archives.extract(archive, name, dest)
    except archives.ArchiveRejected as exc:
        raise BuildContextError(str(exc)) from None


def _normalise_permissions(root: Path, *, skip: Path) -> None:
    # The image runs as a non-root user: everything it reads must be world-readable.
    for path in [root, *root.rglob("*")]:
        if path.is_symlink() or path == skip or skip in path.parents:
            continue
        mode = path.stat().st_mode
        if path.is_dir():
            path.chmod(0o755)
        else:
            path.chmod(0o755 if mode & 0o111 else 0o644)
