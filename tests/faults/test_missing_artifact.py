"""A version whose artifact went missing from storage fails its build with a reason a user can act
on, without the storage's server path (it used to be "FileNotFoundError: [Errno 2] ... /var/...")."""

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.models import Build, BuildState
from deployments.runners import builds as build_runner
from registry.models import ModelVersion
from tests.support.builds import custom_context

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_build_whose_artifact_is_missing_fails_saying_so_without_a_server_path(
    api, teammate, model, registry_row, settings, tmp_path
):
    settings.BUILD_WORKDIR = tmp_path / "builds"
    answer = api.as_user(teammate).post(
        f"/api/v1/models/{model.pk}/versions/",
        {"framework": "custom", "artifact": SimpleUploadedFile("ctx.tar.gz", custom_context("FROM scratch\n"))},
        format="multipart",
    )
    assert answer.status_code in (201, 202), answer.content
    version = ModelVersion.objects.get(pk=answer.json()["id"])
    default_storage.delete(version.artifact.name)
    build = Build.objects.get(version=version)

    build_runner.execute(build_id=build.pk)

    build.refresh_from_db()
    assert build.state == BuildState.FAILED
    assert build.failure_reason == (
        "The artifact ctx.tar.gz of v1 is missing from the artifact storage; upload the version again."
    )
    assert str(settings.MEDIA_ROOT) not in build.failure_reason
    assert not (settings.BUILD_WORKDIR / str(build.pk)).exists()
