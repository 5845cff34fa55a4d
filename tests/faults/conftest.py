"""Fixtures of the integration tests, shared: the fault scenarios run on the same stacks."""

from tests.integration.conftest import (  # noqa: F401  (fixtures)
    own_redis,
    redis_cluster,
    redis_url,
    stack,
)
