"""The key-value store protocol every state backend implements.

A partition's state lives in one store. Writes are atomic batches: the ledger, the month
aggregates and the consumed offsets go in one :meth:`KVStore.write`, so that a crash leaves
either all of a processing step or none of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

__all__ = ["KVStore"]


class KVStore(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]: ...

    def scan_prefix(
        self, prefix: bytes, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with ``prefix``, in key order; with ``start``,
        only those from the first key at or after it (a scan resumed in chunks)."""
        ...

    def write(self, changes: Mapping[bytes, bytes | None]) -> None:
        """Apply puts (bytes) and deletes (None) atomically."""
        ...

    def size_bytes(self) -> int:
        """Approximate bytes the store occupies (on disk for persistent stores)."""
        ...

    def live_bytes(self) -> int:
        """Bytes the state occupies once compacted: live data only, without the obsolete
        versions, deletions and logs a persistent store keeps until it compacts (an estimate
        for RocksDB, exact for the memory store)."""
        ...

    def close(self) -> None: ...
