"""Prepares a Docker build context for one model version.

Pure Python with no Django import: the platform's build task calls ``prepare_context`` and hands the
result to the Docker engine. Wheels are resolved and downloaded on the host (containers cannot reach
the package registries) into a cache shared by builds, and the image installs them with ``--no-index``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import serving
from serving.contract import ARCHIVE_SUFFIXES, DATATYPES, ONNX_SUFFIXES, SKLEARN_SUFFIXES

__all__ = [
    "BASE_REQUIREMENTS",
    "FRAMEWORKS",
    "BuildContextError",
    "BuildSpec",
    "PreparedContext",
    "extract_archive",
    "prepare_context",
    "wheel_cache_key",
]

FRAMEWORKS = ("sklearn", "onnx", "python", "custom")
BASE_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "sklearn": ("numpy", "scikit-learn", "joblib"),
    "onnx": ("numpy", "onnxruntime"),
    "python": ("numpy",),
    "custom": (),
}
PIP_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux2014_x86_64")
PYTHON_VERSION = "3.11"
PYTHON_IMPLEMENTATION = "cp"
PIP_TIMEOUT_SECONDS = 900
MAX_EXTRACTED_BYTES = 20 * 1024**3
RUNTIME_CONFIG = "slipway.json"
CACHE_COMPLETE_MARKER = "complete.json"

_HERE = Path(__file__).resolve().parent
RUNTIME_SOURCE = Path(serving.__file__).resolve().parent  # the serving package, copied whole
DOCKERFILE_TEMPLATE = _HERE / "templates" / "Dockerfile.template"

# Deliberately narrower than Docker's reference grammar: the value is written into the FROM lines.
_IMAGE_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._\-/:]*(?:@sha256:[0-9a-f]{64})?$", re.IGNORECASE)
_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


class BuildContextError(Exception):
    """A one-sentence, user-facing reason why the build context could not be prepared."""


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
    signature: dict
    source_commit: str
    build_id: int
    base_image: str


@dataclass
class PreparedContext:
    path: Path
    dockerfile: str
    bill_of_materials: list[dict] = field(default_factory=list)
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

    cached_wheels = _ensure_wheels(spec.framework, spec.requirements, wheel_cache, log)
    wheels_dir = context / "wheels"
    _link_or_copy_all(sorted(cached_wheels.glob("*.whl")), wheels_dir)
    bill = bill_of_materials(wheels_dir)
    (context / "requirements.lock").write_text(_lock_file(bill), encoding="utf-8")

    shutil.copytree(RUNTIME_SOURCE, context / "runtime" / "serving", ignore=shutil.ignore_patterns("__pycache__"))
    (context / "Dockerfile").write_text(render_dockerfile(spec.base_image), encoding="utf-8")
    _normalise_permissions(context, skip=wheels_dir)
    log(f"build context ready: {len(bill)} wheels, Dockerfile generated")
    return PreparedContext(path=context, dockerfile="Dockerfile", bill_of_materials=bill, labels=labels)


def _prepare_custom(
    spec: BuildSpec, context: Path, labels: dict[str, str], log: Callable[[str], None]
) -> PreparedContext:
    if not _is_archive(spec.artifact_name):
        raise BuildContextError(
            "a custom model must be uploaded as a .tar.gz, .tgz or .zip archive with a Dockerfile at its root"
        )
    extract_archive(spec.artifact_path, spec.artifact_name, context)
    if not (context / "Dockerfile").is_file():
        raise BuildContextError("the custom model's archive has no Dockerfile at its root")
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


def _validate_signature(signature: dict | None) -> None:
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


def runtime_config(spec: BuildSpec, artifact: str) -> dict:
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


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------------------
# The model artifact


def _is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _place_model(spec: BuildSpec, model_dir: Path) -> str:
    """Puts the artifact into model_dir and returns its path there, as slipway.json's 'artifact'."""
    if _is_archive(spec.artifact_name):
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
    """Extracts a .tar.gz/.tgz/.tar/.zip defensively: every entry must land inside dest."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if name.lower().endswith(".zip"):
            _extract_zip(archive, dest)
        else:
            _extract_tar(archive, dest)
    except BuildContextError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise BuildContextError(f"the archive {name!r} could not be extracted: {exc}") from exc


def _check_entry_name(name: str) -> None:
    parts = re.split(r"[\\/]+", name)
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise BuildContextError(f"the archive entry {name!r} has an absolute path")
    if ".." in parts:
        raise BuildContextError(f"the archive entry {name!r} points outside the archive ('..')")
    if "\x00" in name:
        raise BuildContextError("an archive entry name contains a NUL byte")


def _check_total_size(sizes: Iterable[int]) -> None:
    if sum(sizes) > MAX_EXTRACTED_BYTES:
        raise BuildContextError(f"the archive expands to more than {MAX_EXTRACTED_BYTES // 1024**3} GiB")


def _extract_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_tar_member(member)
        _check_total_size(m.size for m in members if m.isfile())
        # The 'data' filter repeats these checks against the real file system as it extracts.
        tar.extractall(dest, filter="data")


def _check_tar_member(member: tarfile.TarInfo) -> None:
    _check_entry_name(member.name)
    if member.issym():
        target = posixpath.normpath(posixpath.join(posixpath.dirname(member.name), member.linkname))
        if member.linkname.startswith("/") or target == ".." or target.startswith("../"):
            raise BuildContextError(f"the archive's link {member.name!r} points outside the archive")
    elif member.islnk():
        _check_entry_name(member.linkname)
    elif not (member.isfile() or member.isdir()):
        raise BuildContextError(f"the archive entry {member.name!r} is not a regular file or folder")


def _extract_zip(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    with zipfile.ZipFile(archive) as bundle:
        entries = bundle.infolist()
        for entry in entries:
            _check_entry_name(entry.filename)
            if stat.S_ISLNK(entry.external_attr >> 16):
                raise BuildContextError(f"the archive entry {entry.filename!r} is a link; zip links are refused")
        _check_total_size(e.file_size for e in entries)
        for entry in entries:
            target = (dest / entry.filename).resolve()
            if not target.is_relative_to(root):
                raise BuildContextError(f"the archive entry {entry.filename!r} points outside the archive")
            if entry.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(entry) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink)


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


# ---------------------------------------------------------------------------------------------------
# Wheels: resolved on the host, cached by requirement set


def requirement_lines(framework: str, requirements: Sequence[str]) -> list[str]:
    """The framework's base requirements plus the user's, checked to be plain requirement data."""
    lines = list(BASE_REQUIREMENTS[framework])
    for raw in requirements:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if any(ch in line for ch in "\r\n\x00"):
            raise BuildContextError(f"requirement {raw!r} spans several lines")
        # pip reads options from requirement files (--index-url, -r, -e ...): only requirements pass.
        if re.search(r"(^|\s)-", line):
            raise BuildContextError(f"requirement {line!r} holds a pip option; only requirement specifiers are allowed")
        if re.search(r"@\s*file:", line, re.IGNORECASE):
            raise BuildContextError(f"requirement {line!r} points at a local file")
        lines.append(line)
    return lines


def wheel_cache_key(framework: str, requirements: Sequence[str]) -> str:
    """sha256 of the requirement set and the target platform: equal keys share downloaded wheels."""
    payload = {
        "requirements": sorted(set(requirement_lines(framework, requirements))),
        "platforms": list(PIP_PLATFORMS),
        "python": PYTHON_VERSION,
        "implementation": PYTHON_IMPLEMENTATION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


def _ensure_wheels(framework: str, requirements: Sequence[str], wheel_cache: Path, log: Callable[[str], None]) -> Path:
    lines = requirement_lines(framework, requirements)
    key = wheel_cache_key(framework, requirements)
    entry = wheel_cache / key
    if (entry / CACHE_COMPLETE_MARKER).is_file():
        log(f"wheel cache hit ({key[:12]}): pip not run")
        return entry / "wheels"
    log(f"wheel cache miss ({key[:12]}): downloading wheels with pip")
    wheel_cache.mkdir(parents=True, exist_ok=True)
    # Download into a private folder, then rename: concurrent builds never see a half-filled entry.
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{key[:12]}-", dir=wheel_cache))
    try:
        requirements_file = staging / "requirements.in"
        requirements_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        _pip_download(requirements_file, staging / "wheels", log)
        wheels = sorted(p.name for p in (staging / "wheels").glob("*.whl"))
        _write_json(staging / CACHE_COMPLETE_MARKER, {"requirements": lines, "wheels": wheels})
        _publish(staging, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry / "wheels"


def _publish(staging: Path, entry: Path) -> None:
    if entry.exists() and not (entry / CACHE_COMPLETE_MARKER).is_file():
        shutil.rmtree(entry, ignore_errors=True)  # a leftover without its marker is not trusted
    try:
        staging.rename(entry)
    except OSError:
        if not (entry / CACHE_COMPLETE_MARKER).is_file():
            raise
        # Another build published the same key first; its wheels are as good as ours.


def pip_download_command(requirements_file: Path, dest: Path) -> list[str]:
    command = [sys.executable, "-m", "pip", "download", "--only-binary=:all:"]
    for platform in PIP_PLATFORMS:
        command += ["--platform", platform]
    command += [
        "--python-version", PYTHON_VERSION,
        "--implementation", PYTHON_IMPLEMENTATION,
        "--disable-pip-version-check", "--no-input", "--progress-bar", "off",
        "-d", str(dest),
        "-r", str(requirements_file),
    ]  # fmt: skip
    return command


def _pip_download(requirements_file: Path, dest: Path, log: Callable[[str], None]) -> None:
    command = pip_download_command(requirements_file, dest)
    tail: deque[str] = deque(maxlen=200)
    process = subprocess.Popen(  # noqa: S603 - an argument list; requirements stay in the file
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        env={**os.environ, "PIP_NO_INPUT": "1"},
    )
    timer = threading.Timer(PIP_TIMEOUT_SECONDS, process.kill)
    timer.start()
    try:
        assert process.stdout is not None
        for raw_line in process.stdout:
            line = raw_line.rstrip()
            tail.append(line)
            log(line)
        returncode = process.wait()
    finally:
        timer.cancel()
    if returncode != 0:
        if returncode < 0:
            raise BuildContextError(f"downloading the requirements took longer than {PIP_TIMEOUT_SECONDS} s")
        raise BuildContextError(explain_pip_failure(list(tail)))


def explain_pip_failure(output: list[str]) -> str:
    """Turns pip's output into one sentence that names the failing requirement where pip does."""
    platform = f"CPython {PYTHON_VERSION} on {PIP_PLATFORMS[0]}"
    patterns = [
        (r"Could not find a version that satisfies the requirement (\S+)", "could not be resolved"),
        (r"No matching distribution found for (\S+)", "could not be resolved"),
        (r"Invalid requirement: '?([^']+)'?", "is not a valid requirement"),
    ]
    for line in output:
        for pattern, verdict in patterns:
            match = re.search(pattern, line)
            if match:
                return f"requirement '{match.group(1)}' {verdict}: {line.strip()} (wheels for {platform} only)"
    errors = [line.strip() for line in output if line.strip().startswith("ERROR")]
    detail = errors[-1] if errors else (output[-1].strip() if output else "pip printed nothing")
    if "ResolutionImpossible" in " ".join(output) or "conflict" in detail.lower():
        return f"the requirements conflict with each other: {detail}"
    return f"the requirements could not be downloaded: {detail}"


def _link_or_copy_all(files: list[Path], dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for source in files:
        try:
            os.link(source, dest / source.name)
        except OSError:
            shutil.copy2(source, dest / source.name)


def parse_wheel_filename(filename: str) -> tuple[str, str]:
    match = _WHEEL_NAME.match(filename)
    if match is None:
        raise BuildContextError(f"{filename!r} is not a wheel file name")
    name = re.sub(r"[-_.]+", "-", match["name"]).lower()
    return name, match["version"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bill_of_materials(wheels_dir: Path) -> list[dict]:
    bill = []
    for wheel in sorted(wheels_dir.glob("*.whl")):
        name, version = parse_wheel_filename(wheel.name)
        bill.append({"name": name, "version": version, "filename": wheel.name, "sha256": _sha256(wheel)})
    return sorted(bill, key=lambda item: item["name"])


def _lock_file(bill: list[dict]) -> str:
    lines = [f"{item['name']}=={item['version']} --hash=sha256:{item['sha256']}" for item in bill]
    return "# Generated by Slipway: exactly the wheels in wheels/.\n" + "\n".join(lines) + "\n"
