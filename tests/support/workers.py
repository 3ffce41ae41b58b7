"""Fixtures for tests that build and deploy for real: build settings shared with a real Celery worker."""

import pytest
from django.conf import settings
from django.db import connection

from deployments.models import ContainerRegistry
from tests.support.services import CeleryWorker, purge_queue


@pytest.fixture(scope="session")
def build_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("builds")
    return {"media": root / "media", "work": root / "work", "wheels": root / "wheels"}


@pytest.fixture
def build_settings(settings, build_dirs, base_image):
    """Settings shared by the test process and its Celery worker (which gets them as env vars)."""
    settings.MEDIA_ROOT = build_dirs["media"]
    settings.BUILD_WORKDIR = build_dirs["work"]
    settings.WHEEL_CACHE = build_dirs["wheels"]
    settings.BASE_IMAGE = base_image
    settings.BUILD_RETRY_BACKOFF = 0.2
    settings.BUILD_HEARTBEAT_SECONDS = 1
    return settings


@pytest.fixture(scope="module")
def celery_worker(request, django_db_setup, django_db_blocker, build_dirs, base_image, tmp_path_factory):
    """One real worker per test module, on the test database. Module scope keeps a killed worker
    in one module from taking the tasks of another."""

    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    purge_queue(settings.REDIS_URL)
    overrides = {
        "SLIPWAY_MEDIA_ROOT": str(build_dirs["media"]),
        "SLIPWAY_BUILD_WORKDIR": str(build_dirs["work"]),
        "SLIPWAY_WHEEL_CACHE": str(build_dirs["wheels"]),
        "SLIPWAY_BASE_IMAGE": base_image,
        "SLIPWAY_BUILD_RETRY_BACKOFF": "0.2",
        "SLIPWAY_BUILD_HEARTBEAT": "1",
        **getattr(request.module, "WORKER_ENV", {}),
    }
    worker = CeleryWorker(database_name, tmp_path_factory.mktemp("worker") / "worker.log", extra_env=overrides)
    yield worker
    worker.stop()


@pytest.fixture
def registry_row(oci_registry):
    return ContainerRegistry.objects.create(
        name="test registry",
        url=oci_registry.host,
        username=oci_registry.username,
        password=oci_registry.password,
        insecure=True,
    )
