"""The month digests the signal judge keeps, bounded by the months they hold.

Judging an enterprise reads its months as digests (engine/signals/timeline.py ``MonthDays``).
The digests of the enterprises judged last are kept, least recently judged out first; a
commit notes which of a kept enterprise's months changed, and judging it again reads only
those. The bound counts months, not enterprises: a digest is about 8 KB with the generator's
47 events a month (docs/performance.md, "Worker memory"), and an enterprise holds as many as
its history has months (up to CREDITFLOW_HISTORY_MONTHS). Bounded by 5,000 enterprises, the
digests held 460 MB of the ledger worker at 12 months each in `make bench`, and would have
held three times that at 36.
"""

from __future__ import annotations

from collections import OrderedDict

from engine.signals.timeline import MonthDays
from state.signals import SignalState

__all__ = ["DigestCache"]


class DigestCache:
    def __init__(self, max_months: int) -> None:
        self._max_months = max_months
        self._digests: OrderedDict[str, dict[int, MonthDays]] = OrderedDict()
        self._stale: dict[str, set[int]] = {}  # kept enterprise -> months changed since
        self._months = 0  # digests held, over every kept enterprise

    @property
    def months(self) -> int:
        """Month digests held."""
        return self._months

    def changed(self, enterprise_id: str, months: set[int]) -> None:
        """A commit changed these months of the enterprise: read them again when judged."""
        stale = self._stale.get(enterprise_id)
        if stale is not None:
            stale.update(months)

    def clear(self) -> None:
        """Drop every digest (state changed other than by a commit: pruning, a move)."""
        self._digests.clear()
        self._stale.clear()
        self._months = 0

    def months_of(self, state: SignalState, enterprise_id: str) -> dict[int, MonthDays]:
        """The enterprise's month digests: those kept, with the months changed since read
        again from the committed state (a commit only notes which: refreshing them at every
        commit cost ingest a quarter of its time when every enterprise changed)."""
        digests = self._digests.get(enterprise_id)
        if digests is None:
            digests = state.months(enterprise_id)
            self._digests[enterprise_id] = digests
            self._stale[enterprise_id] = set()
            self._months += len(digests)
        else:
            self._digests.move_to_end(enterprise_id)
            stale = self._stale[enterprise_id]
            self._months -= len(digests)
            for month in stale:
                digest = state.month(enterprise_id, month)
                if digest is None:
                    digests.pop(month, None)
                else:
                    digests[month] = digest
            stale.clear()
            self._months += len(digests)
        # The enterprise being judged stays, whatever its size: it is read in full anyway.
        while self._months > self._max_months and len(self._digests) > 1:
            forgotten, months = self._digests.popitem(last=False)
            del self._stale[forgotten]
            self._months -= len(months)
        return digests
