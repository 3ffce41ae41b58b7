"""The platform's own packaging, built and run as an operator would: the image, once per session."""

import subprocess

import pytest

from tests.support.services import ROOT, SCRIPTS

# A fixed tag: the engine keeps its layers as the cache for the next run (dependencies are one layer,
# so a run after a code change rebuilds in seconds, not minutes).
PLATFORM_IMAGE = "slipway-test/platform:latest"


@pytest.fixture(scope="session")
def platform_image(docker_engine, base_image):
    """platform/Dockerfile built FROM the locally made base, from a wheelhouse made on this host."""
    subprocess.run(["bash", str(SCRIPTS / "wheelhouse.sh")], check=True, capture_output=True, timeout=600)
    try:
        docker_engine.images.build(
            path=str(ROOT),
            dockerfile="platform/Dockerfile",
            buildargs={"BASE_IMAGE": base_image},
            tag=PLATFORM_IMAGE,
            rm=True,
            forcerm=True,
            timeout=900,
        )
    except Exception as exc:  # BuildError carries the build log: show its end
        log = "".join(chunk.get("stream", "") for chunk in getattr(exc, "build_log", []))
        pytest.fail(f"the platform image did not build: {exc}\n{log[-4000:]}", pytrace=False)
    return PLATFORM_IMAGE
