"""JSON encoding for everything creditflow writes or reads: orjson with honest types."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["DecodeError", "dumps", "dumps_pretty", "loads"]

DecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """Encode to compact JSON bytes (dict keys may be ints: they become strings)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def dumps_pretty(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_INDENT_2)


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Decode JSON; raises :data:`DecodeError` on malformed input."""
    return orjson.loads(data)
