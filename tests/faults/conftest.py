"""Fixtures of the integration tests, shared: the fault scenarios run on the same stacks."""

import pytest

from tests.integration.conftest import (  # noqa: F401  (fixtures)
    own_redis,
    redis_cluster,
    redis_url,
    stack,
)

#: Every fault scenario's marks (`make faults` selects them; `make test` leaves them out),
#: before its own timeout.
FAULT_MARKS = [pytest.mark.faults, pytest.mark.integration, pytest.mark.slow]
