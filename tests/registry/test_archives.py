"""One archive inspector for upload and build: what the upload accepts, the build extracts, and what the
build would refuse, the upload refuses first (registry.archives is the only place the rules live)."""

import io
import stat
import tarfile
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.imaging.context import BuildContextError, extract_archive
from registry import archives
from registry.models import ModelVersion


def zip_with_link(link_target: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("model/model.py", "class Model: ...")
        link = zipfile.ZipInfo("model/latest")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, link_target)
    return buffer.getvalue()


def tar_with(kind: bytes, name: str = "model/pipe") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        data = b"class Model: ..."
        info = tarfile.TarInfo("model/model.py")
        info.size = len(data)
        bundle.addfile(info, io.BytesIO(data))
        special = tarfile.TarInfo(name)
        special.type = kind
        bundle.addfile(special)
    return buffer.getvalue()


HOSTILE = {
    "a zip link, even one pointing inside": ("model.zip", zip_with_link("model.py"), "link"),
    "a fifo": ("model.tar.gz", tar_with(tarfile.FIFOTYPE), "not a regular file"),
    "a character device": ("model.tar.gz", tar_with(tarfile.CHRTYPE, "model/tty"), "not a regular file"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_the_upload_refuses_what_the_build_would_refuse(api, teammate, model, case):
    name, content, reason = HOSTILE[case]
    response = api.as_user(teammate).post(
        f"/api/v1/models/{model.pk}/versions/",
        {"framework": "python", "artifact": SimpleUploadedFile(name, content)},
        format="multipart",
    )
    assert response.status_code == 400
    assert reason in response.json()["artifact"][0]
    assert not ModelVersion.objects.exists()


@pytest.mark.parametrize("case", HOSTILE)
def test_upload_and_build_refuse_an_archive_with_the_same_reason(tmp_path, case):
    name, content, reason = HOSTILE[case]
    path = tmp_path / name
    path.write_bytes(content)

    with pytest.raises(archives.ArchiveRejected) as at_upload:
        archives.list_files(path, name)
    with pytest.raises(BuildContextError) as at_build:
        extract_archive(path, name, tmp_path / "out")

    assert reason in str(at_upload.value)
    assert str(at_build.value) == str(at_upload.value)
    assert not list((tmp_path / "out").rglob("*"))


def test_a_plain_tar_is_an_archive_for_both(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as bundle:
        info = tarfile.TarInfo("../escape.py")
        bundle.addfile(info, io.BytesIO(b""))
    path = tmp_path / "model.tar"
    path.write_bytes(buffer.getvalue())

    assert archives.is_archive("model.tar")
    with pytest.raises(archives.ArchiveRejected, match="escapes its folder"):
        archives.list_files(path, "model.tar")
    with pytest.raises(BuildContextError, match="escapes its folder"):
        extract_archive(path, "model.tar", tmp_path / "out")
