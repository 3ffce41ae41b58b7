"""The version answer is written out by hand for speed; it must say exactly what DRF's generic
serializer says for the fields the class declares (the schema and the docs are made from those)."""

import pytest
from rest_framework import serializers

from registry.api.serializers import VersionSerializer
from registry.models import Framework
from tests.support.factories import VersionFactory


def generic(version) -> dict:
    return serializers.ModelSerializer.to_representation(VersionSerializer(), version)


@pytest.mark.parametrize("time_zone", ["UTC", "Europe/Paris"])
def test_a_version_with_every_field_set_reads_as_the_generic_serializer_says(model, settings, time_zone):
    settings.TIME_ZONE = time_zone
    version = VersionFactory(
        model=model,
        label="1.0.0",
        description="first",
        metrics={"accuracy": 0.97, "loss": 0.1},
        parameters={"C": 1.0},
        signature={"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]},
        requirements=["scikit-learn==1.5.2"],
        tags=["a", "b"],
        source_url="https://example.invalid/repo",
        source_commit="a" * 40,
        artifact_info={"kind": "file", "files": ["model.joblib"]},
    )
    version.artifact.name = "artifacts/1/1/abc/model.joblib"

    fast = VersionSerializer(version).data

    assert fast == generic(version)
    assert fast["artifact_url"] == f"/api/v1/versions/{version.pk}/artifact/"
    assert list(fast) == VersionSerializer.Meta.fields


def test_an_image_version_has_no_artifact_url(model):
    version = VersionFactory(
        model=model, framework=Framework.IMAGE, image_reference="127.0.0.1:5000/x@sha256:" + "b" * 64
    )
    version.artifact.name = ""

    fast = VersionSerializer(version).data

    assert fast == generic(version)
    assert fast["artifact_url"] is None


def test_a_list_reads_each_version_with_its_own_address(model):
    versions = [VersionFactory(model=model) for _ in range(3)]
    for version in versions:
        version.artifact.name = f"artifacts/{version.pk}/model.joblib"

    listed = VersionSerializer(versions, many=True).data

    assert listed == [generic(version) for version in versions]
    assert [v["artifact_url"] for v in listed] == [f"/api/v1/versions/{v.pk}/artifact/" for v in versions]
