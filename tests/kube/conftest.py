"""Makes the emulated cluster's fixtures (tests/support/kube/fixtures.py) available to its own tests."""

from tests.support.kube.fixtures import kube_backend, kube_cluster  # noqa: F401
