"""What the platform learns about an artifact, without ever executing it.

Artifacts come from users and may be hostile: pickles run code when loaded, archives may try to
write outside their folder. Here archives are only listed and ONNX files only parsed as protobuf
data; pickles are never loaded (the image's runtime loads them, inside its own container).
"""

import posixpath
import stat
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from serving.contract import ARCHIVE_SUFFIXES, ONNX_ELEMENT_DATATYPES

MAX_ARCHIVE_ENTRIES = 100_000


class ArtifactRejected(Exception):
    """The artifact is refused; the message says why in one sentence."""


@dataclass
class ArtifactInfo:
    kind: str  # "file" | "archive"
    files: list[str] = field(default_factory=list)
    file_count: int = 0
    has_dockerfile: bool = False
    signature: dict | None = None
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        data = {"kind": self.kind, "file_count": self.file_count, "files": self.files[:200]}
        if self.kind == "archive":
            data["has_dockerfile"] = self.has_dockerfile
        if self.signature:
            data["signature"] = self.signature
        if self.notes:
            data["notes"] = self.notes
        return data


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def _check_member_path(name: str) -> str:
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ArtifactRejected(f"The archive entry '{name}' has an absolute path; entries must stay inside it.")
    normalized = posixpath.normpath(name.replace("\\", "/"))
    if normalized == ".." or normalized.startswith("../") or "/../" in f"/{name}/":
        raise ArtifactRejected(f"The archive entry '{name}' escapes its folder with '..'.")
    return normalized


def _check_link_target(name: str, target: str) -> None:
    if target.startswith("/"):
        raise ArtifactRejected(f"The archive entry '{name}' links to an absolute path '{target}'.")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        raise ArtifactRejected(f"The archive entry '{name}' links outside the archive ('{target}').")


def inspect_archive(path: Path, name: str) -> ArtifactInfo:
    """List an archive's entries and refuse any that would land outside its folder."""
    files: list[str] = []
    try:
        if name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                for entry in archive.infolist():
                    member = _check_member_path(entry.filename)
                    mode = entry.external_attr >> 16
                    if stat.S_ISLNK(mode):
                        _check_link_target(member, archive.read(entry).decode("utf-8", "replace"))
                    if not entry.is_dir():
                        files.append(member)
                    _check_count(files)
        else:
            with tarfile.open(path, mode="r:*") as archive:
                for entry in archive:
                    member = _check_member_path(entry.name)
                    if entry.issym():
                        _check_link_target(member, entry.linkname)
                    elif entry.islnk():
                        # Hard link targets are named from the archive's root, like members.
                        _check_member_path(entry.linkname)
                    elif entry.isdev() or entry.isfifo():
                        raise ArtifactRejected(f"The archive entry '{entry.name}' is a device or pipe.")
                    if entry.isfile():
                        files.append(member)
                    _check_count(files)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ArtifactRejected(f"The archive could not be read: {exc}.") from None
    files.sort()
    return ArtifactInfo(kind="archive", files=files, file_count=len(files), has_dockerfile="Dockerfile" in files)


def _check_count(files: list[str]) -> None:
    if len(files) > MAX_ARCHIVE_ENTRIES:
        raise ArtifactRejected(f"The archive has more than {MAX_ARCHIVE_ENTRIES} files.")


def onnx_datatype(element_type: str) -> str:
    """The protocol's name for an ONNX element type name such as "FLOAT"; unknown types travel as BYTES."""
    return ONNX_ELEMENT_DATATYPES.get(element_type.lower(), "BYTES")


def onnx_signature(path: Path) -> dict:
    """Inputs and outputs of an ONNX graph, read as protobuf data (no operator runs)."""
    import onnx  # parsing only; imported lazily because few requests need it

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:
        raise ArtifactRejected(f"The file is not a readable ONNX model: {exc}.") from None
    initializers = {init.name for init in graph.initializer}

    def describe(value) -> dict | None:
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            return None
        shape = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim]
        return {
            "name": value.name,
            "datatype": onnx_datatype(onnx.TensorProto.DataType.Name(tensor.elem_type)),
            "shape": shape,
        }

    inputs = [d for v in graph.input if v.name not in initializers and (d := describe(v))]
    outputs = [d for v in graph.output if (d := describe(v))]
    return {"inputs": inputs, "outputs": outputs}


def inspect_artifact(path: Path, name: str, framework: str) -> ArtifactInfo:
    if is_archive(name):
        info = inspect_archive(path, name)
        if framework == "custom" and not info.has_dockerfile:
            raise ArtifactRejected("A custom artifact must be an archive with a Dockerfile at its root.")
        return info
    if framework == "custom":
        raise ArtifactRejected("A custom artifact must be a .tar.gz or .zip archive with a Dockerfile at its root.")
    info = ArtifactInfo(kind="file", files=[name], file_count=1)
    if framework == "onnx":
        info.signature = onnx_signature(path)
    elif framework == "sklearn":
        info.notes.append("Pickled models are never loaded by the platform; the image's runtime loads them.")
    return info
