"""The API's query record journal (engine/api/journal.py) on real SQLite files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.api.journal import Journal


def _bodies(journal: Journal) -> list[bytes]:
    return [body for _, body in journal.oldest(1000)]


def test_records_come_back_in_order_and_go_once_removed(tmp_path: Path) -> None:
    journal = Journal(tmp_path, fsync=False)
    journal.append([b"a", b"b"])
    journal.append([b"c"])
    oldest = journal.oldest(2)
    assert [body for _, body in oldest] == [b"a", b"b"]
    journal.remove_through(oldest[-1][0])
    assert _bodies(journal) == [b"c"] and journal.count() == 1
    journal.close()


def test_each_live_process_has_a_slot_of_its_own(tmp_path: Path) -> None:
    first, second = Journal(tmp_path, fsync=False), Journal(tmp_path, fsync=True)
    assert first.path != second.path
    first.close()
    third = Journal(tmp_path, fsync=False)  # the first slot is free again
    assert third.path == first.path
    second.close()
    third.close()


@pytest.mark.parametrize("fsync", [False, True])
def test_what_a_killed_process_journaled_is_found_by_the_next(tmp_path: Path, fsync: bool) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from engine.api.journal import Journal
        journal = Journal(Path({str(tmp_path)!r}), fsync={fsync})
        journal.append([b"served-1", b"served-2"])
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint
        """
    )
    child = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    assert child.returncode == -signal.SIGKILL
    journal = Journal(tmp_path, fsync=False)
    assert _bodies(journal) == [b"served-1", b"served-2"]
    journal.close()


def test_a_journal_nobody_holds_is_adopted_in_order_and_removed(tmp_path: Path) -> None:
    held = Journal(tmp_path, fsync=False)  # slot 0, stays held
    orphan = Journal(tmp_path, fsync=False)  # slot 1, its process "gone"
    orphan.append([b"x", b"y"])
    orphan_path = orphan.path
    orphan.close()
    held.append([b"mine"])
    assert held.adopt_orphans() == 2
    assert _bodies(held) == [b"mine", b"x", b"y"]
    assert not orphan_path.exists()
    held.close()


def test_a_held_journal_is_not_adopted(tmp_path: Path) -> None:
    first, second = Journal(tmp_path, fsync=False), Journal(tmp_path, fsync=False)
    second.append([b"theirs"])
    assert first.adopt_orphans() == 0 and _bodies(second) == [b"theirs"]
    first.close()
    second.close()


def test_the_journal_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    directory = tmp_path / "journal"
    Journal(directory, fsync=False).close()
    assert directory.stat().st_mode & 0o077 == 0
    assert os.access(directory, os.W_OK)
