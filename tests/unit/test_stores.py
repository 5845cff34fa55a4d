"""What every KVStore backend reports about its size, and how it scans."""

from __future__ import annotations

import os

from state.memory import MemoryStore
from state.rocksdb import RocksDBStore

_KEYS = 2_000
_VALUE_BYTES = 500


def _key(i: int) -> bytes:
    return b"L|%06d" % i


def test_live_bytes_count_what_is_live_once_compacted(store: MemoryStore | RocksDBStore) -> None:
    assert store.live_bytes() == 0
    # Random values: compression cannot make them smaller than they are.
    written = {_key(i): os.urandom(_VALUE_BYTES) for i in range(_KEYS)}
    store.write(written)
    for _ in range(3):  # overwrites leave obsolete versions until compacted
        store.write({key: os.urandom(_VALUE_BYTES) for key in written})
    store.compact()
    raw = _KEYS * (len(_key(0)) + _VALUE_BYTES)
    live = store.live_bytes()
    assert raw <= live <= raw * 1.2
    store.write({_key(i): None for i in range(0, _KEYS, 2)})
    store.compact()
    assert raw / 2 <= store.live_bytes() <= raw / 2 * 1.2


def test_the_memory_store_counts_keys_and_values_exactly() -> None:
    store = MemoryStore()
    store.write({b"a": b"xyz", b"bc": b""})
    assert store.live_bytes() == 6
    store.write({b"a": None, b"bc": b"12"})
    assert store.live_bytes() == 4


def test_a_prefix_scan_resumes_from_a_key(store: MemoryStore | RocksDBStore) -> None:
    store.write({b"A|1": b"a", b"M|x|1": b"1", b"M|x|2": b"2", b"M|y|1": b"3", b"N|1": b"n"})
    assert [k for k, _ in store.scan_prefix(b"M|")] == [b"M|x|1", b"M|x|2", b"M|y|1"]
    assert [k for k, _ in store.scan_prefix(b"M|", b"M|x|\xff")] == [b"M|y|1"]
    assert [k for k, _ in store.scan_prefix(b"M|", b"A")] == [b"M|x|1", b"M|x|2", b"M|y|1"]
    assert list(store.scan_prefix(b"M|", b"M|z")) == []
