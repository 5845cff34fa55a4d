"""How every process logs: plain text (the default, for a terminal) or one JSON object a line.

CREDITFLOW_LOG_FORMAT=json makes the worker, the API and the command line write each record
as a JSON object with ``time`` (UTC, ISO 8601), ``level``, ``component`` (the logger's name)
and ``event`` (the message), plus the fields a call passes with ``extra=``: the partition and
offsets where a log call concerns one (agents/ledger.py, agents/retry.py), and ``exc_info``
with the traceback. Log calls name partitions, offsets, stages and exception types, never a
token, a key, an enterprise, account or counterparty id. What a call cannot control, an
exception's message in a traceback (a KeyError on a ledger key, say), is masked as it is
written: every 18-character credit code or resident identity number in a line becomes
``<id>`` (:class:`Masking`).

The formatter is python-json-logger's, not our own: it escapes, serialises the traceback and
carries ``extra`` fields for us.
"""

from __future__ import annotations

import logging
import logging.config
import re
from typing import Any, Literal

__all__ = [
    "LogFormat",
    "Masking",
    "configure_logging",
    "json_formatter",
    "logging_config",
    "python_level",
    "text_formatter",
]

LogFormat = Literal["text", "json"]

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Stable field names of a JSON record (operators' queries depend on them): renaming one is a
# change of the log format, said so in docs/operations.md.
_JSON_FIELDS = {"levelname": "level", "name": "component", "message": "event"}
# Unified social credit codes (GB 32100) and resident identity numbers (GB 11643): 18
# characters, the third to eighth digits (a division code), not inside a longer token.
_IDS = re.compile(r"(?<![0-9A-Z])[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}(?![0-9A-Z])")


class Masking(logging.Formatter):
    """Another formatter's lines, with every enterprise or person id in them masked."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return _IDS.sub("<id>", self._inner.format(record))


def python_level(level: str) -> int:
    """The logging level of a CREDITFLOW_LOG_LEVEL value (``warn`` is ``WARNING``)."""
    return logging.WARNING if level == "warn" else logging.getLevelNamesMapping()[level.upper()]


def text_formatter() -> logging.Formatter:
    """One line per record: time, level, component, message (ids masked)."""
    return Masking(logging.Formatter(_TEXT_FORMAT))


def json_formatter() -> logging.Formatter:
    """One JSON object per record: time, level, component, event and the ``extra`` fields
    (ids masked)."""
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return Masking(
        JsonFormatter(
            list(_JSON_FIELDS),
            rename_fields=_JSON_FIELDS,
            timestamp="time",
            json_ensure_ascii=False,
            # uvicorn repeats each message with terminal colour codes in this field.
            reserved_attrs=[*RESERVED_ATTRS, "color_message"],
        )
    )


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for the root logger, writing to stderr.

    Faust's worker and uvicorn each configure logging themselves; they are given this, so
    that every process writes the same format.
    """
    formatter: dict[str, Any] = (
        {"()": json_formatter} if log_format == "json" else {"()": text_formatter}
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
