"""The RocksDB :class:`~state.kv.KVStore`: one database per partition (rocksdict).

Memory is bounded on purpose (Faust's defaults grew a worker to gigabytes): one block cache
is shared by every partition of a worker, and memtables are small.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import cast

import rocksdict

from engine.errors import StateError, StateReadError

__all__ = ["RocksDBStore", "read_key", "shared_block_cache"]

_WRITE_BUFFER_BYTES = 8 * 1024 * 1024
_BLOCK_BYTES = 32 * 1024
# zstd level where data settles: 6 compresses 4 % better than the default (3) at half its
# speed (about 50 MB/s of raw data in compaction, a background thread); 9 and above gain
# little more and cost much more (loadtest/state_size.py).
_BOTTOMMOST_ZSTD_LEVEL = 6
_OPEN_ATTEMPTS = 50  # a partition handed over on one machine may still be closing


def shared_block_cache(capacity_bytes: int) -> rocksdict.Cache:
    return rocksdict.Cache(capacity_bytes)


def read_key(path: Path, key: bytes) -> bytes | None:
    """One value of a database that another process may have open (a read-only open takes
    no lock); None when the database does not exist."""
    if not (path / "CURRENT").exists():
        return None
    options = rocksdict.Options(raw_mode=True)
    db = rocksdict.Rdict(str(path), options, access_type=rocksdict.AccessType.read_only())
    try:
        value: bytes | None = db.get(key)
        return value
    finally:
        db.close()


class RocksDBStore:
    def __init__(self, path: Path, block_cache: rocksdict.Cache) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_write_buffer_size(_WRITE_BUFFER_BYTES)
        options.set_max_write_buffer_number(2)
        # Fast LZ4 where data is young and rewritten (month aggregates change every step);
        # zstd in 32 KB blocks where it settles, the bulk of the bytes: small ledger records
        # sharing most of their structure, and month aggregates (measured with
        # loadtest/state_size.py, per enterprise-month once compacted, with binary ledger
        # records: 16 KB blocks at the default level 2,626 bytes, 32 KB at level 6 2,497).
        options.set_compression_type(rocksdict.DBCompressionType.lz4())
        options.set_bottommost_compression_type(rocksdict.DBCompressionType.zstd())
        options.set_bottommost_compression_options(-14, _BOTTOMMOST_ZSTD_LEVEL, 0, 0, True)
        table = rocksdict.BlockBasedOptions()
        table.set_block_size(_BLOCK_BYTES)
        table.set_block_cache(block_cache)
        table.set_bloom_filter(10, False)  # most ledger look-ups are for ids never seen
        table.set_cache_index_and_filter_blocks(True)
        options.set_block_based_table_factory(table)
        self._path = path
        self._db = self._open(path, options)
        self._write_options = rocksdict.WriteOptions()

    @staticmethod
    def _open(path: Path, options: rocksdict.Options) -> rocksdict.Rdict:
        for attempt in range(_OPEN_ATTEMPTS):
            try:
                return rocksdict.Rdict(str(path), options)
            except Exception as exc:  # rocksdict raises a bare Exception on a held lock
                if "lock" not in str(exc).lower() or attempt == _OPEN_ATTEMPTS - 1:
                    raise StateError(
                        f"cannot open state database {path}: {exc}. If another worker on "
                        "this machine holds it, stop that worker or give each worker its "
                        "own CREDITFLOW_DATA_DIR."
                    ) from exc
                time.sleep(0.1)
        raise AssertionError("unreachable")

    # rocksdict raises a bare Exception when RocksDB fails (an I/O error, a corrupt block):
    # reads say so as a StateReadError, an OSError, so that the ledger waits the outage out
    # rather than taking the events it was applying for poison (agents/ledger.py).

    def get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._db.get(key)
        except Exception as exc:
            raise self._read_error(exc) from exc
        return value

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            return cast(list[bytes | None], self._db[list(keys)])  # a multi-get
        except Exception as exc:
            raise self._read_error(exc) from exc

    def scan_prefix(
        self, prefix: bytes, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        try:
            for key, value in self._db.items(from_key=max(prefix, start or prefix)):
                assert isinstance(key, bytes) and isinstance(value, bytes)  # raw mode
                if not key.startswith(prefix):
                    return
                yield key, value
        except Exception as exc:
            raise self._read_error(exc) from exc

    def _read_error(self, exc: Exception) -> StateReadError:
        return StateReadError(f"reading state database {self._path} failed: {exc}")

    def write(self, changes: Mapping[bytes, bytes | None]) -> None:
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in changes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        self._db.write(batch, self._write_options)

    def size_bytes(self) -> int:
        return sum(entry.stat().st_size for entry in os.scandir(self._path) if entry.is_file())

    def live_bytes(self) -> int:
        # RocksDB's estimate of the SST bytes holding live data: what the state occupies once
        # compacted. Data still in the memtable is not in it until flushed.
        value = self._db.property_int_value("rocksdb.estimate-live-data-size")
        return 0 if value is None else int(value)

    def compact(self) -> None:
        """Flush the memtable and compact every level (measurements; not on the worker's path)."""
        self._db.flush()
        options = rocksdict.CompactOptions()
        # Rewrite even a lone file (a trivial move would keep its LZ4 blocks).
        options.set_bottommost_level_compaction(rocksdict.BottommostLevelCompaction.force())
        self._db.compact_range(None, None, options)

    def close(self) -> None:
        self._db.close()
