"""What an enterprise keeps of the months pruned from its history: its carry.

Pruning (``PartitionLedger.prune``) removes months booked before the kept history
(``CREDITFLOW_HISTORY_MONTHS``) to bound state, but a pruned booking still happened. Three
readings of today's products depend on it and would drift as history ages, with no event:

- balances: an account whose last booking was pruned still holds its balance ("every account
  with a transaction at or before the period's end", specs/products.toml's ``eod``);
- the first transaction on record (and so ``history_months``) and the last one before a
  period, for a firm dormant longer than the kept history;
- where the kept history starts: windows and earlier quarters are read over kept months only,
  and a product says how many it had (spec version 5).

So pruning folds each removed month into one small record per enterprise: each account's
balance after its last pruned booking (and its bank), the first and last days booked, and
the first month still kept. Its published form is the field ``c`` of the enterprise's views
(state/views.py), read by engine/products/history.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine import codec
from engine.periods import format_month, parse_month
from state.month import MonthAgg

__all__ = ["Carry"]


@dataclass(slots=True)
class Carry:
    kept_from: int  # the first month of the kept history at the last pruning (month ordinal)
    first_day: str  # ISO date of the first booked transaction, pruned or not
    last_day: str  # ISO date of the last pruned transaction
    accounts: dict[str, tuple[str, int]] = field(default_factory=dict)  # -> (bank, balance)

    def fold(self, months: Iterable[tuple[int, MonthAgg]], kept_from: int) -> None:
        """Take in pruned months, in ascending order, every one older than what it holds."""
        self.kept_from = max(self.kept_from, kept_from)
        for month, agg in months:
            label = format_month(month)
            if agg.days:
                first = f"{label}-{min(map(int, agg.days)):02d}"
                last = f"{label}-{max(map(int, agg.days)):02d}"
                self.first_day = min(self.first_day, first) if self.first_day else first
                self.last_day = max(self.last_day, last)
            for account, entry in agg.accounts.items():
                days = entry["days"]
                if days:  # the balance after the month's last booking of the account
                    self.accounts[account] = (entry["bank"], days[max(days, key=int)][2])

    @classmethod
    def empty(cls) -> Carry:
        return cls(kept_from=0, first_day="", last_day="")

    def view(self) -> dict[str, Any]:
        """The published form (no txn ids; accounts are pseudonyms, as in month views)."""
        return {
            "kept_from": format_month(self.kept_from),
            "first_day": self.first_day,
            "last_day": self.last_day,
            "accounts": {a: {"bank": b, "balance": v} for a, (b, v) in self.accounts.items()},
        }

    def encode(self) -> bytes:
        return codec.dumps(self.view())

    @classmethod
    def decode(cls, data: bytes) -> Carry:
        doc = codec.loads(data)
        kept_from = parse_month(doc["kept_from"])
        assert kept_from is not None
        return cls(
            kept_from=kept_from,
            first_day=doc["first_day"],
            last_day=doc["last_day"],
            accounts={a: (e["bank"], e["balance"]) for a, e in doc["accounts"].items()},
        )
