"""What the platform learns about an artifact, without ever executing it.

Artifacts come from users and may be hostile: pickles run code when loaded, archives may try to
write outside their folder. Here archives are only listed and ONNX files only parsed as protobuf
data; pickles are never loaded (the image's runtime loads them, inside its own container).
"""

from dataclasses import dataclass, field
from pathlib import Path

from registry import archives
from serving.contract import ONNX_ELEMENT_DATATYPES


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


def inspect_archive(path: Path, name: str) -> ArtifactInfo:
    """List an archive's files once every entry passed the rules the build will apply again."""
    try:
        files = archives.list_files(path, name)
    except archives.ArchiveRejected as exc:
        raise ArtifactRejected(str(exc)) from None
    return ArtifactInfo(kind="archive", files=files, file_count=len(files), has_dockerfile="Dockerfile" in files)


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
    if archives.is_archive(name):
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
