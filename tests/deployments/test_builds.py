"""Build bookkeeping without the engine: starting, cancelling, reaping, reading logs, permissions."""

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.logs import is_error_line, read_window
from deployments.models import Build, BuildState
from deployments.services import builds
from tests.support.factories import BuildFactory, RegistryFactory, VersionFactory, add_log_lines


@pytest.fixture
def version(model):
    RegistryFactory()
    return VersionFactory(model=model, number=1)


def test_a_developer_starts_a_build_through_the_api(api, teammate, version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = api.as_user(teammate).post("/api/v1/builds/", {"version": version.pk}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["state"] == "queued"
    assert len(callbacks) == 1  # enqueued only once the row has committed


@pytest.mark.parametrize(("caller", "status"), [("viewer", 403), ("stranger", 400), ("approver", 201)])
def test_who_may_start_a_build(request, api, version, caller, status):
    response = api.as_user(request.getfixturevalue(caller)).post(
        "/api/v1/builds/", {"version": version.pk}, format="json"
    )
    assert response.status_code == status


def test_one_build_per_version_at_a_time(api, teammate, version):
    client = api.as_user(teammate)
    first = client.post("/api/v1/builds/", {"version": version.pk}, format="json").json()
    second = client.post("/api/v1/builds/", {"version": version.pk}, format="json")
    assert second.status_code == 400
    assert f"already has a build in progress (build #{first['id']})" in second.json()["non_field_errors"][0]
    Build.objects.filter(pk=first["id"]).update(state=BuildState.FAILED)
    assert client.post("/api/v1/builds/", {"version": version.pk}, format="json").status_code == 201


def test_uploading_a_version_starts_its_build(api, teammate, model, django_capture_on_commit_callbacks):

    RegistryFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.as_user(teammate).post(
            f"/api/v1/models/{model.pk}/versions/",
            {
                "framework": "sklearn",
                "artifact": SimpleUploadedFile("m.joblib", b"m"),
            },
            format="multipart",
        )
    build = Build.objects.get(version_id=response.json()["id"])
    assert build.state == BuildState.QUEUED and build.started_by == teammate


def test_the_automatic_build_is_written_in_the_uploads_own_transaction(
    api, teammate, model, django_capture_on_commit_callbacks
):
    RegistryFactory()
    with django_capture_on_commit_callbacks() as callbacks:  # kept, not run: nothing has committed yet
        response = api.as_user(teammate).post(
            f"/api/v1/models/{model.pk}/versions/",
            {"framework": "sklearn", "artifact": SimpleUploadedFile("m.joblib", b"m")},
            format="multipart",
        )
    assert response.status_code == 201, response.json()
    # The build row was written before the commit, with the version; only its enqueue waits for it.
    build = Build.objects.get(version_id=response.json()["id"])
    assert build.state == BuildState.QUEUED
    assert callbacks, "the build is enqueued on commit"


def test_no_automatic_build_when_the_model_says_so(api, teammate, model, django_capture_on_commit_callbacks):

    RegistryFactory()
    model.auto_build = False
    model.save()
    with django_capture_on_commit_callbacks(execute=True):
        api.as_user(teammate).post(
            f"/api/v1/models/{model.pk}/versions/",
            {
                "framework": "sklearn",
                "artifact": SimpleUploadedFile("m.joblib", b"m"),
            },
            format="multipart",
        )
    assert not Build.objects.exists()


def test_cancelling_a_queued_build_ends_it_at_once(api, teammate, version):
    build = BuildFactory(version=version)
    response = api.as_user(teammate).post(f"/api/v1/builds/{build.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["state"] == "cancelled"
    assert "Cancelled by teammate" in build.log_lines.get().text


def test_cancelling_a_running_build_asks_it_to_stop(api, teammate, version):
    build = BuildFactory(version=version, state=BuildState.BUILDING)
    api.as_user(teammate).post(f"/api/v1/builds/{build.pk}/cancel/")
    build.refresh_from_db()
    assert build.state == BuildState.BUILDING and build.cancel_requested


def test_a_finished_build_cannot_be_cancelled(api, teammate, version):
    build = BuildFactory(version=version, state=BuildState.SUCCEEDED)
    response = api.as_user(teammate).post(f"/api/v1/builds/{build.pk}/cancel/")
    assert response.status_code == 400
    assert "already finished" in response.json()["non_field_errors"][0]


def test_a_viewer_cannot_cancel(api, viewer, version):
    build = BuildFactory(version=version)
    assert api.as_user(viewer).post(f"/api/v1/builds/{build.pk}/cancel/").status_code == 403
    assert Build.objects.get().state == BuildState.QUEUED


def test_the_reaper_fails_builds_whose_worker_is_silent(version, settings):
    settings.BUILD_STALE_AFTER = 30
    silent = BuildFactory(
        version=version, state=BuildState.BUILDING, heartbeat_at=timezone.now() - timedelta(seconds=31)
    )
    alive = BuildFactory(
        version=VersionFactory(model=version.model, number=2),
        state=BuildState.PUSHING,
        heartbeat_at=timezone.now() - timedelta(seconds=5),
    )
    assert builds.reap_stale_builds()["reaped"] == 1
    silent.refresh_from_db()
    alive.refresh_from_db()
    assert silent.state == BuildState.FAILED and "worker running this build was lost" in silent.failure_reason
    assert silent.log_lines.last().text.startswith("ERROR: The worker")
    assert alive.state == BuildState.PUSHING


def test_the_reaper_enqueues_old_queued_builds_again(version, settings, django_capture_on_commit_callbacks):
    settings.BUILD_REQUEUE_AFTER = 60
    BuildFactory(version=version, created_at=timezone.now() - timedelta(minutes=5))
    assert builds.reap_stale_builds()["requeued"] == 1


class TestLogWindows:
    @pytest.fixture
    def build(self, version):
        build = BuildFactory(version=version, state=BuildState.BUILDING)
        add_log_lines(build, 2500)
        return build

    def get(self, api, user, build, **params):
        response = api.as_user(user).get(f"/api/v1/builds/{build.pk}/log/", params)
        assert response.status_code == 200, response.content
        return response.json()

    def test_after_returns_the_next_lines_in_order(self, api, viewer, build):
        body = self.get(api, viewer, build, after=10, limit=5)
        assert [line["seq"] for line in body["lines"]] == [11, 12, 13, 14, 15]
        assert body["next_after"] == 15 and body["finished"] is False

    def test_finished_only_after_the_last_line_was_read(self, api, viewer, build):
        Build.objects.filter(pk=build.pk).update(state=BuildState.SUCCEEDED)
        assert self.get(api, viewer, build, after=0, limit=1000)["finished"] is False
        last = self.get(api, viewer, build, after=2000, limit=1000)
        assert last["finished"] is True and last["next_after"] == 2500

    def test_tail_before_and_search_read_windows(self, api, viewer, build):
        assert [line["seq"] for line in self.get(api, viewer, build, tail=3)["lines"]] == [2498, 2499, 2500]
        assert [line["seq"] for line in self.get(api, viewer, build, before=100, limit=2)["lines"]] == [98, 99]
        assert [line["seq"] for line in self.get(api, viewer, build, search="line 250", after=300)["lines"]][:2] == [
            2500
        ]

    def test_a_window_is_capped(self, api, viewer, build):
        assert len(self.get(api, viewer, build, after=0, limit=100000)["lines"]) == 2500  # capped at 5000

    def test_bad_parameters_are_named(self, api, viewer, build):
        response = api.as_user(viewer).get(f"/api/v1/builds/{build.pk}/log/", {"after": "x"})
        assert response.status_code == 400
        assert "'after' must be a whole number" in response.json()["after"][0]

    def test_query_count_does_not_depend_on_the_log_size(self, api, viewer, build):
        client = api.as_user(viewer)
        with CaptureQueriesContext(connection) as small:
            client.get(f"/api/v1/builds/{build.pk}/log/", {"after": 0, "limit": 10})
        with CaptureQueriesContext(connection) as large:
            client.get(f"/api/v1/builds/{build.pk}/log/", {"after": 0, "limit": 2000})
        assert len(small) == len(large)

    def test_the_whole_log_downloads_as_text(self, api, viewer, build):
        response = api.as_user(viewer).get(f"/api/v1/builds/{build.pk}/log/download/")
        assert response.status_code == 200
        text = b"".join(response.streaming_content).decode()
        assert text.startswith("line 1\nline 2\n") and text.endswith("line 2500\n")

    def test_a_stranger_cannot_read_it(self, api, stranger, build):
        assert api.as_user(stranger).get(f"/api/v1/builds/{build.pk}/log/").status_code == 404


def test_the_bill_of_materials_downloads_as_cyclonedx(api, viewer, version):
    build = BuildFactory(
        version=version,
        state=BuildState.SUCCEEDED,
        image_digest="sha256:" + "a" * 64,
        bill_of_materials=[{"name": "numpy", "version": "2.4.6", "sha256": "b" * 64, "filename": "numpy.whl"}],
    )
    document = api.as_user(viewer).get(f"/api/v1/builds/{build.pk}/bom/").json()
    assert document["bomFormat"] == "CycloneDX"
    assert document["components"][0]["purl"] == "pkg:pypi/numpy@2.4.6"
    assert document["components"][0]["hashes"] == [{"alg": "SHA-256", "content": "b" * 64}]


def test_build_pages_show_state_and_log_viewer(client, viewer, version):
    build = BuildFactory(version=version, state=BuildState.FAILED, failure_reason="The image build failed: boom.")
    add_log_lines(build, 3, text="<script>alert({n})</script>")
    client.force_login(viewer)
    page = client.get(f"/builds/{build.pk}/").content.decode()
    assert "The image build failed: boom." in page and "data-log-viewer" in page
    assert "<script>alert(" not in page  # log text reaches the page only through the viewer, escaped
    version_page = client.get(f"/models/vision/iris/v{version.number}/").content.decode()
    assert f"Build #{build.pk}" in version_page
    assert "Cancel build" not in version_page


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("ERROR: The container exited with code 1", True),
        ("==> Build failed: pip could not resolve numpy==9", True),
        ("Traceback (most recent call last):", True),
        ("ValueError: could not convert string to float", True),
        ("  | _pickle.UnpicklingError: invalid load key, 'h'.", True),
        ("Waiting for vision-iris-dev-1: answered 503: model failed to load: UnpicklingError", True),
        ("Waiting for vision-iris-dev-1: no answer yet (ConnectionError)", False),
        ("0 errors, 0 warnings", False),
        ("Step 4/9 : RUN pip install --no-index -r requirements.txt", False),
    ],
)
def test_one_rule_says_which_log_lines_are_errors_for_python_and_the_database(version, text, error):
    build = BuildFactory(version=version)
    assert is_error_line(text) is error
    add_log_lines(build, 1, text=text)
    found = read_window(build.log_lines.all(), errors=True)
    assert [line["text"] for line in found] == ([text] if error else [])
