"""How every process logs: plain text (the default, for a terminal) or one JSON object a line.

CREDITFLOW_LOG_FORMAT=json makes the worker, the API and the command line write each record
as a JSON object with ``time`` (UTC, ISO 8601), ``level``, ``component`` (the logger's name)
and ``event`` (the message), plus the fields a call passes with ``extra=``: the partition and
offsets where a log call concerns one (agents/ledger.py, agents/retry.py), and ``exc_info``
with the traceback. Log calls name partitions, offsets, stages and exception types, never a
token, a key, an enterprise, account or counterparty id.

The formatter is python-json-logger's, not our own: it escapes, serialises the traceback and
carries ``extra`` fields for us.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any, Literal

__all__ = ["LogFormat", "configure_logging", "json_formatter", "logging_config", "python_level"]

LogFormat = Literal["text", "json"]

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Stable field names of a JSON record (operators' queries depend on them): renaming one is a
# change of the log format, said so in docs/operations.md.
_JSON_FIELDS = {"levelname": "level", "name": "component", "message": "event"}


def python_level(level: str) -> int:
    """The logging level of a CREDITFLOW_LOG_LEVEL value (``warn`` is ``WARNING``)."""
    return logging.WARNING if level == "warn" else logging.getLevelNamesMapping()[level.upper()]


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time, level, component, event and the ``extra`` fields."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        list(_JSON_FIELDS),
        rename_fields=_JSON_FIELDS,
        timestamp="time",
        json_ensure_ascii=False,
        # uvicorn repeats each message with terminal colour codes in this field.
        reserved_attrs=[*RESERVED_ATTRS, "color_message"],
    )


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for the root logger, writing to stderr.

    Faust's worker and uvicorn each configure logging themselves; they are given this, so
    that every process writes the same format.
    """
    formatter: dict[str, Any] = (
        {"()": json_formatter} if log_format == "json" else {"format": _TEXT_FORMAT}
    )
    return {
        "version": 1,
        # Loggers made at import (every module's `log`) must keep logging.
        "disable_existing_loggers": False,
        "formatters": {"creditflow": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "creditflow",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": python_level(level), "handlers": ["stderr"]},
    }


def configure_logging(log_format: LogFormat, level: str) -> None:
    """Configure this process's root logger (replacing its handlers)."""
    logging.config.dictConfig(logging_config(log_format, level))
