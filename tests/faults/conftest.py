"""Fault tests: their own Redis (and PostgreSQL, see test_database_outage.py), stopped and started
while work is in flight. The suite's shared services are never stopped."""

import pytest

from tests.deployments.test_webhooks import receiver  # noqa: F401  a webhook receiver on loopback
from tests.support.faults import RedisServer, celery_broker
from tests.support.kube.fixtures import kube_backend, kube_cluster  # noqa: F401  the emulated cluster


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def broker(own_redis):
    """This process enqueues into `own_redis`, which the test may stop and start."""
    with celery_broker(own_redis.url):
        yield own_redis


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Lets a fixture see whether its test failed (to show the logs of the processes it ran)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
