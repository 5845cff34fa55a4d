"""The configuration every confluent-kafka client of ours starts from.

librdkafka logs from its own threads straight to stderr unless a client is given a Python
logger: a producer destroyed with a delivery report not yet served printed
``%6|...|BGQUEUE|rdkafka#producer-1| ... Purging 1 unserved events`` into the API's
JSON log, a line no log shipper can parse (CI, test_every_process_logs_one_json_object_a_line).
With ``logger`` set, its records go through logging like ours: JSON when the process logs
JSON, at the level the process shows. They are served by the client's ``poll``/``flush``;
one destroyed before it serves them drops them, never writes raw lines.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

__all__ = ["client_config"]

_librdkafka_log = logging.getLogger("librdkafka")


def client_config(bootstrap: str, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``bootstrap.servers`` and the logger, then ``settings`` (librdkafka's names)."""
    return {"bootstrap.servers": bootstrap, "logger": _librdkafka_log, **(settings or {})}
