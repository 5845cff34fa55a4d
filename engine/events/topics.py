"""Names of every topic creditflow reads or writes.

Renaming a topic is a migration: consumers and producers of both names must be moved.
"""

from __future__ import annotations

import re

__all__ = [
    "ACCESS_LOG_TOPIC",
    "ACCESS_STATE_TOPIC",
    "BANK_CODE_RE",
    "BANK_TOPIC_RE",
    "QUERY_RECORDS_TOPIC",
    "REJECTED_TOPIC",
    "ROUTED_TOPIC",
    "SIGNALS_TOPIC",
    "SIGNAL_STATE_TOPIC",
    "bank_code_of",
    "bank_topic",
]

BANK_CODE_RE = re.compile(r"^[A-Z0-9]{4,12}$")
BANK_TOPIC_RE = re.compile(r"^bank\.([A-Z0-9]{4,12})\.txns$")

#: Valid transactions, re-keyed and re-partitioned by enterprise (stage 1 -> stage 2).
#: It is the log the worker state is folded from, so its retention must cover the
#: history a rebuild needs.
ROUTED_TOPIC = "creditflow.txns.routed.v1"

#: Every rejected event, with its reason (the contract names it).
REJECTED_TOPIC = "txns.rejected"

#: Every command that changes access state (institutions, credentials, authorizations,
#: disputes, statements), in the order they take effect: one partition, kept forever. It is
#: the record access state is rebuilt from, and the history of every dispute's steps.
ACCESS_LOG_TOPIC = "creditflow.access.log.v1"

#: The current state of every access entity, keyed by "<kind>/<id>" (compacted): what other
#: systems read to know who is authorized, without replaying the log.
ACCESS_STATE_TOPIC = "creditflow.access.state.v1"

#: One record per product request, served or refused, keyed by enterprise (append-only;
#: retention CREDITFLOW_QUERY_RECORD_RETENTION_DAYS).
QUERY_RECORDS_TOPIC = "creditflow.queries.v1"

#: Credit signal episodes (raised, cleared, retracted), keyed by enterprise, partitioned as
#: the routed topic: the record from which deliveries to lenders are made (issue 16). The
#: name is the one lenders' systems subscribe to, hence no creditflow prefix.
SIGNALS_TOPIC = "credit.signals"

#: Each enterprise's signal episodes as the judge keeps them (open ones with their evidence,
#: and the kept ones the quarterly counts), keyed by enterprise, partitioned as the routed
#: topic, compacted: the changelog a partition's signal state is restored from when the
#: partition moves or its state is lost. Closed episodes depend on when the data arrived,
#: so the routed topic alone cannot rebuild them (agents/signal_restore.py).
SIGNAL_STATE_TOPIC = "creditflow.signals.state.v1"


def bank_topic(code: str) -> str:
    if not BANK_CODE_RE.match(code):
        raise ValueError(f"bank code {code!r} must match {BANK_CODE_RE.pattern}")
    return f"bank.{code}.txns"


def bank_code_of(topic: str) -> str | None:
    match = BANK_TOPIC_RE.match(topic)
    return match.group(1) if match else None
