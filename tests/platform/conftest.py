"""The platform's own packaging, built and run as an operator would: the image, once per session."""

import subprocess
import threading

import pytest

from tests.support.services import ROOT, SCRIPTS

# A fixed tag: the engine keeps its layers as the cache for the next run (dependencies are one layer,
# so a run after a code change rebuilds in seconds, not minutes).
PLATFORM_IMAGE = "slipway-test/platform:latest"


class ImageBuild(threading.Thread):
    """platform/Dockerfile built FROM the locally made base, from a wheelhouse made on this host.

    It runs in the background from the first test that asks, so that a cold build (minutes) overlaps
    with the install-script containers, which mostly wait on downloads."""

    def __init__(self, engine, base_image: str):
        super().__init__(name="platform-image-build", daemon=True)
        self.engine, self.base_image = engine, base_image
        self.error: str | None = None

    def run(self):
        try:
            subprocess.run(["bash", str(SCRIPTS / "wheelhouse.sh")], check=True, capture_output=True, timeout=600)
            self.engine.images.build(
                path=str(ROOT),
                dockerfile="platform/Dockerfile",
                buildargs={"BASE_IMAGE": self.base_image},
                tag=PLATFORM_IMAGE,
                rm=True,
                forcerm=True,
                timeout=900,
            )
        except subprocess.CalledProcessError as exc:
            self.error = f"wheelhouse.sh failed:\n{exc.stderr.decode(errors='replace')[-3000:]}"
        except Exception as exc:  # BuildError carries the build log: keep its end
            log = "".join(chunk.get("stream", "") for chunk in getattr(exc, "build_log", []))
            self.error = f"{exc}\n{log[-4000:]}"

    def image(self) -> str:
        self.join(timeout=1200)
        if self.is_alive():
            pytest.fail("the platform image build is still running after 20 minutes", pytrace=False)
        if self.error:
            pytest.fail(f"the platform image did not build: {self.error}", pytrace=False)
        return PLATFORM_IMAGE


@pytest.fixture(scope="session")
def platform_image_build(docker_engine, base_image):
    build = ImageBuild(docker_engine, base_image)
    build.start()
    return build


@pytest.fixture(scope="session")
def platform_image(platform_image_build):
    return platform_image_build.image()
