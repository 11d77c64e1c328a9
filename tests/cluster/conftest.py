"""Fixtures of the cluster and permission tests."""

from tests.cluster.secured import secured  # noqa: F401  (a fixture, found by name)
