import hashlib
import io
import tarfile
import zipfile

import onnx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from onnx import TensorProto, helper

from registry.models import ModelVersion
from tests.support.factories import RegistryFactory


def upload(api, model, *, content=b"model-bytes", name="model.joblib", **fields):
    data = {"framework": "sklearn", "artifact": SimpleUploadedFile(name, content), **fields}
    return api.post(f"/api/v1/models/{model.pk}/versions/", data, format="multipart")


def stored_files(media_root):
    return [p for p in media_root.rglob("*") if p.is_file()] if media_root.exists() else []


def tar_gz(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def test_it_stores_the_artifact_with_its_checksum_and_size(api, teammate, model, _media_root):
    content = b"\x80\x04 a pickled model, never loaded by the platform" * 1000
    response = upload(
        api.as_user(teammate),
        model,
        content=content,
        label="1.0.0",
        metrics='{"accuracy": 0.97}',
        requirements="scikit-learn==1.5.2\nnumpy>=1.26",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 1
    assert body["artifact_sha256"] == hashlib.sha256(content).hexdigest()
    assert body["artifact_size"] == len(content)
    assert body["metrics"] == {"accuracy": 0.97}
    assert body["requirements"] == ["scikit-learn==1.5.2", "numpy>=1.26"]
    version = ModelVersion.objects.get(pk=body["id"])
    assert version.artifact.read() == content


def test_environment_markers_are_kept_as_given(api, teammate, model):
    response = upload(api.as_user(teammate), model, requirements="numpy; python_version>'3'\nscipy>=1.11")
    assert response.status_code == 201, response.json()
    assert response.json()["requirements"] == ['numpy; python_version > "3"', "scipy>=1.11"]


def test_versions_are_numbered_in_order(api, teammate, model):
    client = api.as_user(teammate)
    numbers = [upload(client, model).json()["number"] for _ in range(3)]
    assert numbers == [1, 2, 3]


def test_the_artifact_downloads_unchanged(api, viewer, teammate, model):
    content = b"weights" * 100
    version_id = upload(api.as_user(teammate), model, content=content).json()["id"]
    response = api.as_user(viewer).get(f"/api/v1/versions/{version_id}/artifact/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["X-Checksum-SHA256"] == hashlib.sha256(content).hexdigest()


def test_a_too_large_upload_gets_413_and_stores_nothing(api, teammate, model, settings, _media_root):
    settings.MAX_ARTIFACT_SIZE = 64 * 1024
    response = upload(api.as_user(teammate), model, content=b"x" * (200 * 1024))
    assert response.status_code == 413
    assert "larger than the limit of 64.0 KiB" in response.json()["detail"]
    assert not ModelVersion.objects.exists()
    assert stored_files(_media_root) == []


def test_an_archive_escaping_its_folder_is_refused_and_leaves_nothing(api, teammate, model, _media_root):
    evil = tar_gz({"model/weights.bin": b"w", "../../etc/cron.d/owned": b"* * * * * root sh"})
    response = upload(api.as_user(teammate), model, content=evil, name="model.tar.gz")
    assert response.status_code == 400
    assert "escapes its folder" in response.json()["artifact"][0]
    assert not ModelVersion.objects.exists()
    assert stored_files(_media_root) == []


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside"])
def test_an_archive_with_a_link_pointing_outside_is_refused(api, teammate, model, target):
    evil = tar_gz({"model/a.txt": b"a"}, links={"model/link": target})
    response = upload(api.as_user(teammate), model, content=evil, name="model.tar.gz")
    assert response.status_code == 400
    assert "link" in response.json()["artifact"][0]


def test_a_zip_with_an_absolute_path_is_refused(api, teammate, model):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("/abs/evil.py", "print('x')")
    response = upload(api.as_user(teammate), model, content=buffer.getvalue(), name="model.zip")
    assert response.status_code == 400
    assert "absolute path" in response.json()["artifact"][0]


def test_a_safe_archive_is_listed(api, teammate, model):
    archive = tar_gz(
        {"model/model.py": b"class Model: ...", "model/weights.bin": b"w"}, links={"model/latest": "weights.bin"}
    )
    response = upload(api.as_user(teammate), model, content=archive, name="model.tar.gz", framework="python")
    assert response.status_code == 201, response.json()
    assert response.json()["artifact_info"]["files"] == ["model/model.py", "model/weights.bin"]


def test_a_custom_artifact_needs_a_dockerfile(api, teammate, model):
    archive = tar_gz({"app.py": b"print(1)"})
    response = upload(api.as_user(teammate), model, content=archive, name="ctx.tar.gz", framework="custom")
    assert response.status_code == 400
    assert "Dockerfile" in response.json()["artifact"][0]


def test_a_label_is_unique_within_the_model(api, teammate, model):
    client = api.as_user(teammate)
    assert upload(client, model, label="v1.2.0").status_code == 201
    response = upload(client, model, label="v1.2.0")
    assert response.status_code == 400
    assert "already used" in response.json()["label"][0]
    assert ModelVersion.objects.count() == 1


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("requirements", "numpy; rm -rf /", "not a valid requirement"),
        ("requirements", "--index-url http://evil/simple", "pip options"),
        # A hash or any option after the requirement is refused naming the line, never dropped.
        (
            "requirements",
            "numpy; python_version>'3' --hash=sha256:00",
            "Line 1: pip options such as '--hash=sha256:00'",
        ),
        ("requirements", "scipy\nnumpy -i http://evil/simple", "Line 2: pip options such as '-i'"),
        ("requirements", "pkg @ https://example.com/pkg.whl", "direct URLs"),
        ("metrics", '{"accuracy": "high"}', "must be a number"),
        ("metrics", "{not json", "Not valid JSON"),
        # Past a float's range (or NaN) is no number jsonb holds: refused naming the metric, not a 500.
        ("metrics", '{"accuracy": 0.9, "a": 1e999}', "metrics.a must be a finite number: the number given is beyond"),
        ("metrics", '{"a": -1e999}', "metrics.a must be a finite number: the number given is beyond"),
        ("metrics", '{"a": NaN}', "metrics.a must be a finite number, not NaN"),
        ("parameters", '{"alpha": 1e999}', "parameters.alpha must be a finite number"),
        ("signature", '{"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1]}]}', "datatype must be one of"),
        ("label", "has space", "semver or git tag"),
        ("source_commit", "zzz", "hexadecimal"),
        ("framework", "tensorflow", "is not a valid choice"),
        # PostgreSQL's jsonb holds no NUL character: refused here, not a 500 when the row is saved.
        ("parameters", '{"x": "a\\u0000b"}', "Null characters"),
        ("signature", '{"inputs": [{"name": "x\\u0000", "datatype": "FP32", "shape": [1]}]}', "Null characters"),
    ],
)
def test_bad_metadata_is_refused_naming_the_field(api, teammate, model, field, value, reason):
    response = upload(api.as_user(teammate), model, **{field: value})
    assert response.status_code == 400
    assert reason in " ".join(response.json()[field])
    assert not ModelVersion.objects.exists()


def test_an_infinite_metric_in_a_json_body_is_a_400_naming_it_and_stores_nothing(api, teammate, model):
    RegistryFactory(url="registry.local:5000")
    body = '{"framework": "image", "image_reference": "registry.local:5000/vision/det:1.0", "metrics": {"a": 1e999}}'
    response = api.as_user(teammate).post(f"/api/v1/models/{model.pk}/versions/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "metrics": [
            "metrics.a must be a finite number: the number given is beyond what a 64-bit float holds (±1.8e308)."
        ]
    }
    assert not ModelVersion.objects.exists()


def test_a_prebuilt_image_version_needs_a_valid_reference(api, teammate, model):
    RegistryFactory(url="registry.local:5000")
    client = api.as_user(teammate)
    url = f"/api/v1/models/{model.pk}/versions/"
    bad = client.post(url, {"framework": "image", "image_reference": "Not An Image!"}, format="json")
    assert bad.status_code == 400
    assert "not a valid image reference" in bad.json()["image_reference"][0]
    good = client.post(
        url, {"framework": "image", "image_reference": "registry.local:5000/vision/det:1.0"}, format="json"
    )
    assert good.status_code == 201
    assert good.json()["artifact_url"] is None


def test_an_onnx_signature_is_read_without_running_the_model(api, teammate, model):

    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], ["scores"])],
        "g",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 4])],
    )
    content = helper.make_model(graph).SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(content))
    response = upload(api.as_user(teammate), model, content=content, name="model.onnx", framework="onnx")
    assert response.status_code == 201, response.json()
    assert response.json()["signature"] == {
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "scores", "datatype": "FP32", "shape": [-1, 4]}],
    }


def test_a_broken_onnx_file_is_refused(api, teammate, model):
    response = upload(api.as_user(teammate), model, content=b"not protobuf at all", name="m.onnx", framework="onnx")
    assert response.status_code == 400
    assert "not a readable ONNX model" in response.json()["artifact"][0]


def test_versions_are_immutable(api, teammate, model):
    version_id = upload(api.as_user(teammate), model).json()["id"]
    response = api.patch(f"/api/v1/versions/{version_id}/", {"label": "changed"}, format="json")
    assert response.status_code == 405
    version = ModelVersion.objects.get(pk=version_id)
    version.label = "changed"
    with pytest.raises(Exception, match="immutable"):
        version.save()


def test_an_archived_model_takes_no_new_versions(api, owner, model):
    model.archived = True
    model.save()
    response = upload(api.as_user(owner), model)
    assert response.status_code == 400
    assert "archived" in response.json()["model"][0]


def test_a_duplicate_model_name_is_refused_naming_the_field(api, teammate, team, model):
    """README: errors name the field. A second model of the same name in a team is the `name`'s fault."""
    response = api.as_user(teammate).post(
        "/api/v1/models/", {"team": team.slug, "name": model.name, "task": "classification"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()) == {"name"}, response.json()
    assert "already has a model named" in response.json()["name"][0]
