"""Wheels for a build: resolved and downloaded on the host, cached by requirement set, listed as a bill of materials.

Containers cannot reach the package registries, so the image installs these wheels with ``--no-index``.
Standard library only (pip runs as a subprocess), like the rest of deployments.imaging.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from deployments.imaging.errors import BuildContextError

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
CACHE_COMPLETE_MARKER = "complete.json"

_WHEEL_NAME = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


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


def ensure_wheels(framework: str, requirements: Sequence[str], wheel_cache: Path, log: Callable[[str], None]) -> Path:
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


def link_or_copy_all(files: list[Path], dest: Path) -> None:
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


def bill_of_materials(wheels_dir: Path) -> list[dict[str, str]]:
    bill = []
    for wheel in sorted(wheels_dir.glob("*.whl")):
        name, version = parse_wheel_filename(wheel.name)
        bill.append({"name": name, "version": version, "filename": wheel.name, "sha256": _sha256(wheel)})
    return sorted(bill, key=lambda item: item["name"])


def lock_file(bill: list[dict[str, str]]) -> str:
    lines = [f"{item['name']}=={item['version']} --hash=sha256:{item['sha256']}" for item in bill]
    return "# Generated by Slipway: exactly the wheels in wheels/.\n" + "\n".join(lines) + "\n"
