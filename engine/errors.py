"""The error root of creditflow and the errors an operator can meet.

Each error says what went wrong and, where there is one, what to do about it.
"""

from __future__ import annotations

__all__ = [
    "BadRequestError",
    "ConfigurationError",
    "CreditflowError",
    "EmbeddedServiceError",
    "NotFoundError",
    "SpecError",
    "StateError",
    "StateReadError",
]


class CreditflowError(Exception):
    """Root of every error raised on purpose by creditflow."""


class ConfigurationError(CreditflowError):
    """A setting is missing or contradicts another."""


class SpecError(CreditflowError):
    """A product specification in specs/ is invalid."""


class StateError(CreditflowError):
    """Worker state cannot be used as it is (e.g. it is ahead of the log it derives from)."""


class StateReadError(StateError, OSError):
    """Worker state could not be read (the disk or the database failed): an outage to wait
    out, never a fault of the events being applied (an OSError, as the disk's own errors)."""


class EmbeddedServiceError(CreditflowError):
    """An embedded broker or Redis could not be started."""


class BadRequestError(CreditflowError):
    """A request names a malformed enterprise id or period (HTTP 400)."""


class NotFoundError(CreditflowError):
    """There is no data for the request (HTTP 404)."""
