"""What a partition's state keeps, numbered: a state that keeps less than the engine reads is
rebuilt from the routed topic by itself, not by an operator who read the upgrade notes.

Some upgrades make the month aggregates keep more from each event (spec versions 7 to 12
added day marks: loan proceeds, judicial deductions, each utility's and tax's payments). A
month folded before such an upgrade has none of it and nothing in its bytes says so: the
items that read it were silently wrong until the partition was rebuilt by hand. The state
now carries ``_content``, the number below; a partition whose state has another (an older
one, or none: every state before the number existed) drops what the routed topic rebuilds (ledger
records, waiting reversals, months, carries, markers, progress) and refolds the topic from
offset 0 as after a lost state (docs/architecture.md, Recovery). The signal episodes stay:
the routed topic cannot give them back (agents/signal_restore.py).

The drop is resumable: ``_content`` reads ``rebuilding`` from the batch that removes the
progress until the last key is gone, so a crash in between goes on where it stopped instead
of taking the leftovers for a state.
"""

from __future__ import annotations

from itertools import islice

from state.kv import KVStore
from state.ledger_types import META_KEY

__all__ = ["CONTENT_KEY", "STATE_CONTENT", "rebuild_if_older"]

CONTENT_KEY = b"_content"
# 1: months keep the day marks of spec version 12 (power_paid ... tax_paid). Raise it with
# any change that makes the ledger keep more from an event; every older state rebuilds.
STATE_CONTENT = 1
_REBUILDING = b"rebuilding"
# What the routed topic rebuilds (state/ledger.py lists the keys); S| and G| are not.
_REFOLDED = (b"L|", b"P|", b"M|", b"C|", b"E|")
_CHUNK = 10_000


def rebuild_if_older(store: KVStore) -> bool:
    """Drop what the routed topic rebuilds when the state's content is not STATE_CONTENT;
    returns whether it did. A fresh state is only stamped."""
    raw = store.get(CONTENT_KEY)
    current = str(STATE_CONTENT).encode()
    if raw == current:
        return False
    if raw is None and store.get(META_KEY) is None and not _any(store, b"L|"):
        store.write({CONTENT_KEY: current})  # nothing folded yet
        return False
    if raw != _REBUILDING:
        store.write({CONTENT_KEY: _REBUILDING, META_KEY: None})
    for prefix in _REFOLDED:
        while chunk := [key for key, _ in islice(store.scan_prefix(prefix), _CHUNK)]:
            store.write(dict.fromkeys(chunk))
    store.write({CONTENT_KEY: current})
    return True


def _any(store: KVStore, prefix: bytes) -> bool:
    return next(store.scan_prefix(prefix), None) is not None
