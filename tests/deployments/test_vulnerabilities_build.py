"""A real build is scanned before it succeeds: its wheels and the Debian packages of its image."""

import json
import os
import tempfile
from pathlib import Path

import joblib
import pytest
import sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from deployments.models import BuildState, Finding
from deployments.services import vulnerabilities
from tests.deployments.test_builds_integration import SIGNATURE, log_text, upload
from tests.support.builds import pushed_copy, wait_for_build
from tests.support.factories import EnvironmentFactory
from tests.support.osv import CVSS_HIGH, advisory, write_folder

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# The worker and this process read the same mirrored folder (the worker is told where when it starts).
OSV_FOLDER = Path(tempfile.gettempdir()) / f"slipway-osv-{os.getpid()}"
WORKER_ENV = {"SLIPWAY_VULN_DB": str(OSV_FOLDER)}


def next_patch(version: str) -> str:
    major, minor, patch = [*version.split("."), "0", "0"][:3]
    return f"{major}.{minor}.{int(''.join(c for c in patch if c.isdigit()) or 0) + 1}"


@pytest.fixture
def osv_database(settings):
    write_folder(
        OSV_FOLDER,
        [
            advisory(
                "GHSA-test-sk99",
                "scikit-learn",
                ("introduced", "0"),
                ("fixed", next_patch(sklearn.__version__)),
                aliases=["CVE-2026-49999"],
                cvss=CVSS_HIGH,
            ),
            advisory(
                "DEBIAN-CVE-2026-49998",
                "glibc",
                ("introduced", "0"),
                ("fixed", "2.36-9+deb12u99"),
                ecosystem="Debian:12",
                urgency="medium",
            ),
        ],
    )
    settings.VULN_DB = str(OSV_FOLDER)
    assert vulnerabilities.database_refresh()["changed"] == 2
    return OSV_FOLDER


def test_a_build_lists_its_debian_packages_and_is_scanned_before_it_succeeds(
    api, teammate, viewer, model, registry_row, build_settings, osv_database, celery_worker, tmp_path
):
    features, labels = load_iris(return_X_y=True)
    path = tmp_path / "model.joblib"
    joblib.dump(LogisticRegression(max_iter=500).fit(features, labels), path)
    version = upload(
        api.as_user(teammate),
        model,
        name="model.joblib",
        content=path.read_bytes(),
        framework="sklearn",
        signature=json.dumps(SIGNATURE),
        requirements=f"scikit-learn=={sklearn.__version__}",
    )
    build = wait_for_build(version["id"])
    log = log_text(build)
    assert build.state == BuildState.SUCCEEDED, f"{build.failure_reason}\n{log[-3000:]}"

    ecosystems = {item.get("ecosystem") for item in build.bill_of_materials}
    assert ecosystems == {"PyPI", "generic", "Debian:12"}
    libc = next(item for item in build.bill_of_materials if item["name"] == "libc6")
    assert libc["source"] == "glibc" and libc["arch"] == "amd64"
    assert "Debian packages (Debian:12); all are in the bill of materials (read from its dpkg status in" in log
    assert "2 vulnerabilities (1 high, 1 medium)" in log
    assert build.scanned_at is not None and build.scanned_at <= build.finished_at

    found = {(f.advisory_id, f.package, f.installed_version) for f in Finding.objects.filter(build=build)}
    assert found == {
        ("GHSA-test-sk99", "scikit-learn", sklearn.__version__),
        ("DEBIAN-CVE-2026-49998", "glibc", libc["source_version"]),
    }
    body = api.as_user(viewer).get(f"/api/v1/builds/{build.pk}/vulnerabilities/").json()
    assert body["counts"]["high"] == 1
    assert body["findings"][0]["explanation"] == (
        f"CVE-2026-49999 in scikit-learn {sklearn.__version__}, high, fixed in {next_patch(sklearn.__version__)}"
    )


def test_a_prebuilt_image_is_scanned_too_and_the_gate_holds_it_to_the_same_rule(
    api, teammate, model, registry_row, oci_registry, build_settings, osv_database, celery_worker, docker_engine
):
    # The base image: Debian 12, whose python3 sees Debian's pip. An advisory for that pip, beside glibc's.
    write_folder(
        OSV_FOLDER,
        [
            *(json.loads(path.read_text()) for path in sorted(OSV_FOLDER.glob("*.json"))),
            advisory("GHSA-test-pip9", "pip", ("introduced", "0"), ("fixed", "99.0"), cvss=CVSS_HIGH),
        ],
    )
    assert vulnerabilities.database_refresh()["changed"] == 1
    client = api.as_user(teammate)
    with pushed_copy(docker_engine, oci_registry, build_settings.BASE_IMAGE, "vision/prebuilt-scanned") as reference:
        version = client.post(
            f"/api/v1/models/{model.pk}/versions/", {"framework": "image", "image_reference": reference}, format="json"
        ).json()
        build = wait_for_build(version["id"])
    log = log_text(build)
    assert build.state == BuildState.SUCCEEDED, f"{build.failure_reason}\n{log[-3000:]}"

    assert build.scanned_at is not None and "nothing is built" in log
    assert {item.get("ecosystem") for item in build.bill_of_materials} == {"PyPI", "Debian:12"}
    found = {(f.advisory_id, f.package) for f in Finding.objects.filter(build=build)}
    assert found == {("GHSA-test-pip9", "pip"), ("DEBIAN-CVE-2026-49998", "glibc")}
    gated = EnvironmentFactory(team=model.team, name="staging", block_severity="high")
    refused = client.post("/api/v1/rollouts/", {"version": version["id"], "environment": gated.pk}, format="json")
    assert refused.status_code == 400
    assert "GHSA-test-pip9 in pip" in refused.json()["version"][0]
