"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from state.kv import KVStore
from state.memory import MemoryStore
from state.rocksdb import RocksDBStore, shared_block_cache


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KVStore]:
    """Each KVStore backend in turn, empty (RocksDB is what workers run on)."""
    opened: KVStore = (
        MemoryStore()
        if request.param == "memory"
        else RocksDBStore(tmp_path / "db", shared_block_cache(1 << 20))
    )
    yield opened
    opened.close()
