"""The version and model answers are written out by hand for speed; it must say exactly what DRF's generic
serializer says for the fields the class declares (the schema and the docs are made from those)."""

import pytest
from django.utils import timezone
from rest_framework import serializers

from registry import selectors
from registry.api.serializers import ModelSerializer, VersionSerializer
from registry.models import Framework
from tests.support.factories import ModelFactory, VersionFactory


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


def generic_model(model) -> dict:
    return serializers.ModelSerializer.to_representation(ModelSerializer(), model)


@pytest.mark.parametrize("time_zone", ["UTC", "Europe/Paris"])
def test_a_model_reads_as_the_generic_serializer_says(team, owner, settings, time_zone):
    settings.TIME_ZONE = time_zone
    created = ModelFactory(team=team, created_by=owner, description="iris", task="classification", auto_build=False)
    created.archived_at = timezone.now()
    created.archived = True
    created.build_network_reason = "needs a mirror"
    created.save()

    fast = ModelSerializer(created).data

    assert fast == generic_model(created)
    assert fast["version_count"] is None
    assert fast["archived_at"] is not None
    assert list(fast) == ModelSerializer.Meta.fields


def test_a_listed_model_reads_its_counts_as_the_generic_serializer_says(team, owner, model):
    VersionFactory(model=model)
    latest = VersionFactory(model=model)
    listed = selectors.model_list(user=owner).get(pk=model.pk)

    fast = ModelSerializer(listed).data

    assert fast == generic_model(listed)
    assert (fast["version_count"], fast["latest_version"]) == (2, latest.number)
    assert fast["archived_at"] is None
