"""Finding 3: custom builds and prebuilt images reached other teams' images and internal addresses.

Each escape is tried as a developer would: a custom archive or a prebuilt reference uploaded through
the API, built on the real Docker engine against a real registry. The build (or the upload) now fails
with the reason, and nothing of the other team's is used."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from deployments.imaging.errors import BuildContextError
from deployments.imaging.sources import ImageSources, check_dockerfile
from deployments.models import Build, BuildState
from deployments.runners.builds import execute
from deployments.services.builds import build_start
from registry.models import ModelVersion
from tests.support.builds import custom_context

pytestmark = [pytest.mark.django_db(transaction=True)]


def _upload_custom(api, user, model, dockerfile: str) -> int:
    response = api.as_user(user).post(
        f"/api/v1/models/{model.pk}/versions/",
        {"framework": "custom", "artifact": SimpleUploadedFile("ctx.tar.gz", custom_context(dockerfile))},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _build(version_id: int, actor=None) -> Build:
    build = build_start(actor=actor, version=ModelVersion.objects.get(pk=version_id))
    execute(build_id=build.pk)
    build.refresh_from_db()
    return build


def _log(build: Build) -> str:
    return "\n".join(build.log_lines.order_by("seq").values_list("text", flat=True))


@pytest.fixture
def other_teams_image(docker_engine, base_image, registry_row):
    """Another team's image, sitting in the shared engine's cache (as after any of its builds)."""
    reference = f"{registry_row.url}/other/secret-model:v1"
    docker_engine.images.get(base_image).tag(reference)
    yield reference
    docker_engine.images.remove(reference, noprune=True)


@pytest.fixture
def developer_model(model):
    model.auto_build = False
    model.save()
    return model


def test_from_another_teams_image_in_the_engine_cache(
    api, teammate, developer_model, build_settings, registry_row, other_teams_image
):
    version = _upload_custom(api, teammate, developer_model, f'FROM {other_teams_image}\nCMD ["true"]\n')
    build = _build(version)
    assert build.state == BuildState.FAILED
    assert f"FROM {other_teams_image} is not allowed" in build.failure_reason
    assert "Step 1" not in _log(build), "the engine never started the build"


def test_copy_from_another_teams_image(api, teammate, developer_model, build_settings, base_image, other_teams_image):
    dockerfile = f"FROM {base_image}\nCOPY --from={other_teams_image} /etc/hostname /stolen\n"
    build = _build(_upload_custom(api, teammate, developer_model, dockerfile))
    assert build.state == BuildState.FAILED
    assert f"COPY --from {other_teams_image} is not allowed" in build.failure_reason


def test_add_fetches_the_cloud_metadata_address(
    api, teammate, developer_model, build_settings, base_image, registry_row
):
    dockerfile = f"FROM {base_image}\nADD http://169.254.169.254/latest/meta-data/iam/ /creds\n"
    build = _build(_upload_custom(api, teammate, developer_model, dockerfile))
    assert build.state == BuildState.FAILED
    assert "ADD may not fetch http://169.254.169.254/latest/meta-data/iam/" in build.failure_reason


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def host_service():
    """An internal service on the build host, reachable from the default bridge network (its gateway)."""
    _Recorder.hits = []
    server = ThreadingHTTPServer(("0.0.0.0", 0), _Recorder)  # noqa: S104  the bridge gateway must reach it
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


# RUN reaches the host through the bridge's gateway, read from the routing table (no tools needed).
_REACH_HOST = (
    'python3 -c "import socket,struct,urllib.request; '
    "gw=[l.split()[2] for l in open('/proc/net/route') if l.split()[1]=='00000000'][0]; "
    "ip=socket.inet_ntoa(struct.pack('<L', int(gw, 16))); "
    "print(urllib.request.urlopen(f'http://{{ip}}:{port}/from-a-build', timeout=5).read())\""
)


def test_run_reaches_an_internal_service_from_the_build_host(
    api, teammate, developer_model, build_settings, base_image, registry_row, host_service
):
    dockerfile = f"FROM {base_image}\nRUN {_REACH_HOST.format(port=host_service)}\n"
    build = _build(_upload_custom(api, teammate, developer_model, dockerfile))
    assert build.state == BuildState.FAILED
    assert "No network for this build's RUN steps" in _log(build)
    assert _Recorder.hits == [], "the build reached the host"


def test_a_site_admin_may_allow_the_network_with_a_reason_the_build_shows(
    api, teammate, site_admin, developer_model, build_settings, base_image, registry_row, host_service
):
    refused = api.as_user(teammate).post(
        f"/api/v1/models/{developer_model.pk}/build-network/", {"reason": "I want it"}, format="json"
    )
    assert refused.status_code == 403
    allowed = api.as_user(site_admin).post(
        f"/api/v1/models/{developer_model.pk}/build-network/",
        {"reason": "fetches the tokenizer from the internal mirror (INC-77)"},
        format="json",
    )
    assert allowed.status_code == 200, allowed.json()
    dockerfile = f"FROM {base_image}\nRUN {_REACH_HOST.format(port=host_service)}\n"
    build = _build(_upload_custom(api, teammate, developer_model, dockerfile))
    assert build.network_reason == "fetches the tokenizer from the internal mirror (INC-77)"
    assert api.as_user(teammate).get(f"/api/v1/builds/{build.pk}/").json()["network_reason"] == build.network_reason
    assert build.state == BuildState.SUCCEEDED, build.failure_reason
    assert _Recorder.hits == ["/from-a-build"]


def test_a_prebuilt_image_of_another_team_is_refused_on_upload(api, teammate, developer_model, registry_row):
    response = api.as_user(teammate).post(
        f"/api/v1/models/{developer_model.pk}/versions/",
        {"framework": "image", "image_reference": f"{registry_row.url}/other/secret-model:v1"},
        format="multipart",
    )
    assert response.status_code == 400
    assert "is not in your team's repositories" in response.json()["image_reference"][0]


def test_a_prebuilt_image_in_the_teams_own_path_is_accepted(api, teammate, developer_model, registry_row):
    response = api.as_user(teammate).post(
        f"/api/v1/models/{developer_model.pk}/versions/",
        {"framework": "image", "image_reference": f"{registry_row.url}/vision/iris:v1"},
        format="multipart",
    )
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize(
    "dockerfile",
    [
        "FROM 127.0.0.1:5000/vision/../other/x:v1\n",
        "ARG IMAGE=127.0.0.1:5000/other/x:v1\nFROM $IMAGE\n",
        "FROM \\\n  127.0.0.1:5000/other/x:v1\n",
        "# escape=`\nFROM `\n  127.0.0.1:5000/other/x:v1\n",
        "from 127.0.0.1:5000/vision-evil/x:v1\n",
        "FROM base AS build\nFROM build\nCOPY --from=127.0.0.1:5000/other/x:v1 / /\n",
        # The builder splits an instruction from its arguments at any whitespace, a tab too.
        "FROM\t127.0.0.1:5000/other/x:v1\n",
        "FROM base\nADD\thttp://169.254.169.254/latest/meta-data/ /creds\n",
        "FROM base\nCOPY\t--from=127.0.0.1:5000/other/x:v1 / /\n",
        # ADD expands build arguments and environment variables before it fetches.
        "FROM base\nARG U=http://169.254.169.254/latest/meta-data/\nADD ${U} /creds\n",
        "FROM base\nENV U=http://169.254.169.254\nADD $U/latest/meta-data/ /creds\n",
        # ...and removes quotes and escapes from its words first.
        'FROM base\nADD http:"//"169.254.169.254/latest/meta-data/ /creds\n',
        "FROM base\nADD http:\\/\\/169.254.169.254/latest/meta-data/ /creds\n",
        "# escape=`\nFROM base\nADD http:`/`/169.254.169.254/latest/meta-data/ /creds\n",
        # ONBUILD runs its instruction in a later build FROM this image (the team's own repositories).
        "FROM base\nONBUILD ADD http://169.254.169.254/latest/meta-data/ /creds\n",
        "FROM base\nONBUILD COPY --from=127.0.0.1:5000/other/x:v1 / /\n",
    ],
)
def test_dockerfile_tricks_are_refused(dockerfile):
    sources = ImageSources(base_images=("base",), own_prefixes=("127.0.0.1:5000/vision/",))
    with pytest.raises(BuildContextError):
        check_dockerfile(dockerfile, sources)


def test_stages_the_base_image_and_the_teams_own_repositories_are_allowed():
    sources = ImageSources(base_images=("base",), own_prefixes=("127.0.0.1:5000/vision/",))
    check_dockerfile(
        "FROM base AS deps\nFROM 127.0.0.1:5000/vision/iris:v3\nCOPY --from=deps /opt /opt\nCOPY --from=0 /a /b\n"
        "ADD model.tar.gz /srv/\n",
        sources,
    )
