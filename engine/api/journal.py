"""The API's query record journal: records made durable on the API's own disk (SQLite, one
file per API process) until they are shipped to the query records topic.

Why a journal: a pull may leave only once its record is durable, and waiting for the broker
put the broker's round trip on every pull: make bench at f783ea1 measured pulls at p50
2.45 ms and p99 96 ms during ingest, and a produce per few records cost the broker and the
access stage more CPU than the pull itself. A commit here is a write into the kernel,
tens of microseconds, with no other process in the way; records then go to Kafka many to a
message (engine/api/recorder.py).

Why SQLite (the standard library's sqlite3): it is the well-kept way to append durably to a
local file, torn writes and crash recovery handled. In WAL mode a commit is in the kernel
when it returns: it survives the crash of any process, the API's own included. ``fsync``
(the api_journal_fsync setting) also syncs each commit to the disk, so that it survives a
power loss of the machine. Without it nothing here waits for the disk: the records reach
the broker within 50 ms, and the kernel writes the file back on its own. Measured with
`python -m loadtest.pull_probe 2000 30 15000` (this machine's one disk is the worker's too):
pull p50 0.66 ms and p99 1.3 to 1.8 ms without syncs; 1.65 to 1.8 ms and 14 to 16 ms with a
sync per commit; and a sync per checkpoint alone (synchronous=NORMAL) made p99 3.6 to 464 ms,
because an ext4 sync waits for the worker's RocksDB writes and the API's next write waits
for that sync.

Appends, reads and deletes run on the caller's thread (the event loop: a commit without
sync costs less than a hand-over to a thread); ``checkpoint`` is meant for another thread,
on a connection of its own.

Slots: the ``N``-th API process on a host takes ``journal-N.sqlite``, held by an exclusive
lock on ``journal-N.lock`` for the life of the process. A process that starts takes the
first free slot, so a restarted API finds what its predecessor journaled and did not ship,
and it adopts the journals of slots nobody holds (processes that are gone for good).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import IO

__all__ = ["Journal", "JournalError"]

# Rows are in the order appended; what is shipped is deleted, so the table holds exactly the
# records the broker does not have yet.
_SCHEMA = "CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)"
_MAX_SLOTS = 256


class JournalError(Exception):
    """The journal could not be opened or written."""


class Journal:
    """One slot's journal: records appended in order, read and removed once shipped."""

    def __init__(self, directory: Path, fsync: bool) -> None:
        # The records name institutions, enterprises and purposes: the API's user only.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self._fsync = fsync
        self._lock, self.path = _take_slot(directory)
        try:
            self._db = _connect(self.path, fsync)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the query record journal {self.path}: {exc}") from exc
        self._checkpointer: sqlite3.Connection | None = None

    def append(self, bodies: list[bytes]) -> None:
        """Write ``bodies`` durably, in order (about 16 us of CPU for one record)."""
        try:
            with self._db:  # one transaction (and one sync, with fsync) for the whole group
                rows = ((body,) for body in bodies)
                self._db.executemany("INSERT INTO records (body) VALUES (?)", rows)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot write the query record journal: {exc}") from exc

    def count(self) -> int:
        """Records held: those the broker does not have yet."""
        held: int = self._db.execute("SELECT count(*) FROM records").fetchone()[0]
        return held

    def oldest(self, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` records, oldest first, with their sequence numbers."""
        rows = self._db.execute(
            "SELECT seq, body FROM records ORDER BY seq LIMIT ?", (limit,)
        ).fetchall()
        return [(s, bytes(b)) for s, b in rows]

    def remove_through(self, seq: int) -> None:
        """Forget the records up to ``seq``: the broker has them."""
        with self._db:
            self._db.execute("DELETE FROM records WHERE seq <= ?", (seq,))

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database, so that the log starts over (with
        fsync, and syncs both: call it from a thread of its own). Appends go on meanwhile."""
        if self._checkpointer is None:
            self._checkpointer = _connect(self.path, self._fsync)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()

    def adopt_orphans(self) -> int:
        """Move the records of journals no live process holds into this one (then delete
        those files); how many were moved. A crash in between leaves them in both: the
        record is shipped twice, and the query index keeps one (engine/access/records.py)."""
        moved = 0
        for path in sorted(self.directory.glob("journal-*.sqlite")):
            if path == self.path:
                continue
            lock = _try_lock(path.with_suffix(".lock"))
            if lock is None:
                continue  # a live API process holds it
            try:
                other = _connect(path, self._fsync)
                try:
                    rows = other.execute("SELECT body FROM records ORDER BY seq").fetchall()
                finally:
                    other.close()
                if rows:
                    self.append([bytes(body) for (body,) in rows])
                    moved += len(rows)
                for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    leftover.unlink(missing_ok=True)
            finally:
                lock.close()
        return moved

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._db.close()
        self._lock.close()


def _connect(path: Path, fsync: bool) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL syncs the log at every commit; NORMAL writes it (the kernel has it) and syncs at
    # checkpoints. Either way a commit survives the crash of any process.
    db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
    # Checkpoints (which sync) are the shipper's, on its thread: never in a commit.
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("PRAGMA busy_timeout=5000")  # the checkpoint briefly holds the database
    db.execute(_SCHEMA)
    db.isolation_level = "DEFERRED"  # `with db:` is a transaction from here on
    return db


def _take_slot(directory: Path) -> tuple[IO[bytes], Path]:
    for slot in range(_MAX_SLOTS):
        path = directory / f"journal-{slot}.sqlite"
        lock = _try_lock(path.with_suffix(".lock"))
        if lock is not None:
            return lock, path
    raise JournalError(f"all {_MAX_SLOTS} journal slots in {directory} are held")


def _try_lock(path: Path) -> IO[bytes] | None:
    """The open lock file, exclusively locked (released when closed or when the process
    dies); None when another process holds it."""
    handle = open(path, "ab")  # noqa: SIM115 - held for the life of the journal
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    with contextlib.suppress(OSError):
        os.fchmod(handle.fileno(), 0o600)
    return handle
