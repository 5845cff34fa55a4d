"""Fixtures of the integration tests, shared: the fault scenarios run on the same stacks."""

from tests.integration.conftest import own_redis, redis_url, stack  # noqa: F401  (fixtures)
