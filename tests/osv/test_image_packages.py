"""An image's Debian packages are read from its dpkg status, without running it."""

import docker
import pytest

from deployments.imaging.packages import debian_packages

pytestmark = pytest.mark.slow


def test_the_base_image_lists_its_debian_packages_by_source(docker_engine, base_image):
    client = docker.APIClient(version="auto")
    ecosystem, packages = debian_packages(client, base_image)
    assert ecosystem == "Debian:12"
    by_name = {p.name: p for p in packages}
    assert len(packages) > 50
    assert by_name["libc6"].source == "glibc"
    assert by_name["libc6"].version.startswith("2.36-")
    assert by_name["python3"].source.startswith("python3-defaults")
    # The container used to copy the files out is gone again.
    assert client.containers(all=True, filters={"name": "slipway-packages-"}) == []


def test_an_image_without_dpkg_has_no_debian_packages(docker_engine, base_image, tmp_path):
    client = docker.APIClient(version="auto")
    (tmp_path / "Dockerfile").write_text(f"FROM {base_image}\nRUN rm -rf /var/lib/dpkg\n")
    image = client.build(path=str(tmp_path), tag="slipway-test/no-dpkg:1", rm=True, decode=True)
    list(image)
    try:
        assert debian_packages(client, "slipway-test/no-dpkg:1") == ("", [])
    finally:
        client.remove_image("slipway-test/no-dpkg:1", force=True)
