"""Makes the fixtures of tests/kube/fixtures.py available to the tests in this folder."""

from .fixtures import kube_backend, kube_cluster  # noqa: F401
