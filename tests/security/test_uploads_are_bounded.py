"""Finding 6: uploads could exhaust the web process. Archive entries are now counted and sized as they
stream, a zip's entry count is read before its directory is parsed, and a large archive or ONNX file
is inspected on a worker while the version says "inspecting"."""

from __future__ import annotations

import io
import stat
import tarfile
import tracemalloc
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import Build
from registry import archives
from registry.models import ModelVersion
from registry.services import version_inspect
from tests.support.factories import RegistryFactory


def _upload(client, model, name: str, content: bytes, framework: str = "python"):
    return client.post(
        f"/api/v1/models/{model.pk}/versions/",
        {"framework": framework, "artifact": SimpleUploadedFile(name, content)},
        format="multipart",
    )


def _tar_of_folders(count: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for n in range(count):
            info = tarfile.TarInfo(f"d{n}")
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
    return buffer.getvalue()


def test_an_archive_of_countless_folders_is_refused_in_bounded_memory(api, teammate, model, monkeypatch, tmp_path):
    # Folders used to go uncounted, and tarfile kept every one it read.
    monkeypatch.setattr(archives, "MAX_ENTRIES", 1_000)
    content = _tar_of_folders(8_000)
    response = _upload(api.as_user(teammate), model, "m.tar.gz", content)
    assert response.status_code == 400
    assert "more than 1,000 entries" in response.json()["artifact"][0]

    path = tmp_path / "m.tar.gz"
    path.write_bytes(content)
    tracemalloc.start()
    with pytest.raises(archives.ArchiveRejected):
        archives.list_files(path, "m.tar.gz")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1024**2, f"listing held {peak:,} bytes"  # all 8,000 folders kept: about 3.5 MB


def test_a_zip_announcing_more_entries_than_allowed_is_refused_before_its_directory_is_read(monkeypatch, tmp_path):
    monkeypatch.setattr(archives, "MAX_ENTRIES", 100)
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        for n in range(101):
            bundle.writestr(f"f{n}", b"")
    opened = []
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: opened.append(self))
    with pytest.raises(archives.ArchiveRejected, match="more than 100 entries"):
        archives.list_files(path, "many.zip")
    assert opened == [], "the central directory was never parsed"


def test_a_zip_link_is_refused_from_its_header_without_reading_it(monkeypatch, tmp_path):
    path = tmp_path / "link.zip"
    with zipfile.ZipFile(path, "w") as bundle:
        info = zipfile.ZipInfo("model.bin")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(info, b"x" * 1_000_000)
    read = []
    monkeypatch.setattr(zipfile.ZipFile, "open", lambda self, *a, **k: read.append(a))
    with pytest.raises(archives.ArchiveRejected, match="is a link"):
        archives.list_files(path, "link.zip")
    assert read == []


def test_a_decompression_bomb_stops_at_the_limit(monkeypatch, tmp_path):
    monkeypatch.setattr(archives, "MAX_EXTRACTED_BYTES", 8 * 1024**2)
    path = tmp_path / "bomb.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for n in range(4):
            info = tarfile.TarInfo(f"zeros{n}")
            info.size = 4 * 1024**2
            archive.addfile(info, io.BytesIO(bytes(info.size)))
    assert path.stat().st_size < 200_000
    with pytest.raises(archives.ArchiveRejected, match="expands to more than 8 MiB"):
        archives.list_files(path, "bomb.tar.gz")
    with pytest.raises(archives.ArchiveRejected):
        archives.extract(path, "bomb.tar.gz", tmp_path / "out")
    assert not any((tmp_path / "out").iterdir()), "nothing was extracted"


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_large_archive_is_inspected_on_a_worker_and_builds_only_after(
    api, teammate, model, settings, django_capture_on_commit_callbacks
):
    settings.INLINE_INSPECTION_BYTES = 100
    RegistryFactory()
    content = _archive({"model.py": b"print('hi')\n", "weights.bin": bytes(range(256)) * 64})
    assert len(content) > 100
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _upload(api.as_user(teammate), model, "m.tar.gz", content)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["inspection"] == "inspecting" and body["artifact_info"] == {}
    assert len(callbacks) == 1, "only the inspection is queued, no build"
    page = api.get(f"/models/{model.team.slug}/{model.name}/v1/").content.decode()
    assert "inspecting" in page

    with django_capture_on_commit_callbacks(execute=False):
        version_inspect(version_id=body["id"])
    version = ModelVersion.objects.get(pk=body["id"])
    assert version.inspection == "" and version.artifact_info["files"] == ["model.py", "weights.bin"]
    assert Build.objects.filter(version=version).exists(), "announced once inspected: its build starts"


def test_a_large_hostile_archive_is_rejected_by_the_worker_and_never_builds(
    api, teammate, model, settings, django_capture_on_commit_callbacks
):
    settings.INLINE_INSPECTION_BYTES = 10
    RegistryFactory()
    with django_capture_on_commit_callbacks(execute=False):
        response = _upload(api.as_user(teammate), model, "m.tar.gz", _archive({"../../etc/cron.d/x": b"* * * * *"}))
    assert response.status_code == 201
    version_inspect(version_id=response.json()["id"])
    version = ModelVersion.objects.get(pk=response.json()["id"])
    assert version.inspection == "rejected" and "escapes its folder" in version.inspection_note
    assert not Build.objects.exists()
    refused = api.as_user(teammate).post("/api/v1/builds/", {"version": version.pk}, format="json")
    assert refused.status_code == 400
    assert "rejected when inspected" in str(refused.json())


def test_small_uploads_are_still_inspected_at_once(api, teammate, model):
    response = _upload(api.as_user(teammate), model, "m.tar.gz", _archive({"../x": b""}))
    assert response.status_code == 400
    assert not ModelVersion.objects.exists()
