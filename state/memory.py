"""An in-memory :class:`~state.kv.KVStore` for tests and pure computations."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, Sequence

__all__ = ["MemoryStore"]


class MemoryStore:
    def __init__(self) -> None:
        self._data: dict[bytes, bytes] = {}
        self._keys: list[bytes] = []  # sorted, for prefix scans

    def get(self, key: bytes) -> bytes | None:
        return self._data.get(key)

    def get_many(self, keys: Sequence[bytes]) -> list[bytes | None]:
        return [self._data.get(k) for k in keys]

    def scan_prefix(
        self, prefix: bytes, start: bytes | None = None
    ) -> Iterator[tuple[bytes, bytes]]:
        keys = self._keys
        i = bisect.bisect_left(keys, max(prefix, start or prefix))
        snapshot = []
        while i < len(keys) and keys[i].startswith(prefix):
            snapshot.append((keys[i], self._data[keys[i]]))
            i += 1
        return iter(snapshot)

    def write(self, changes: Mapping[bytes, bytes | None]) -> None:
        for key, value in changes.items():
            if value is None:
                if self._data.pop(key, None) is not None:
                    del self._keys[bisect.bisect_left(self._keys, key)]
            else:
                if key not in self._data:
                    bisect.insort(self._keys, key)
                self._data[key] = value

    def size_bytes(self) -> int:
        return self.live_bytes()

    def live_bytes(self) -> int:
        return sum(len(k) + len(v) for k, v in self._data.items())

    def compact(self) -> None:
        """Nothing to compact (as :meth:`RocksDBStore.compact`, for measurements)."""

    def close(self) -> None:
        pass
