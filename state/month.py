"""One enterprise's aggregate for one calendar month (CST), and its published view.

The aggregate is kept incrementally: a transaction adds to it, a reversal subtracts its
original. Counterparties and accounts appear only as pseudonyms.
"""

from __future__ import annotations

from typing import Any

from engine import codec

__all__ = ["MonthAgg"]


class MonthAgg:
    """Sums and counts, live counterparties, and each account's last booking in the month."""

    __slots__ = ("accounts", "counterparties", "in_amount", "in_count", "out_amount", "out_count")

    def __init__(self) -> None:
        self.in_amount = 0
        self.in_count = 0
        self.out_amount = 0
        self.out_count = 0
        # counterparty pseudonym -> number of counted transactions with it (self excluded)
        self.counterparties: dict[str, int] = {}
        # account pseudonym -> [booked_us, txn_id, balance_after_fen] of its last counted
        # transaction in the month, in (booked_at, txn_id) order
        self.accounts: dict[str, list[Any]] = {}

    @property
    def is_empty(self) -> bool:
        return self.in_count == 0 and self.out_count == 0

    def add(
        self,
        inflow: bool,
        amount: int,
        cp: str | None,
        account: str,
        booked_us: int,
        txn_id: str,
        balance: int,
    ) -> None:
        if inflow:
            self.in_amount += amount
            self.in_count += 1
        else:
            self.out_amount += amount
            self.out_count += 1
        if cp is not None:
            self.counterparties[cp] = self.counterparties.get(cp, 0) + 1
        last = self.accounts.get(account)
        if last is None or (booked_us, txn_id) > (last[0], last[1]):
            self.accounts[account] = [booked_us, txn_id, balance]

    def remove(self, inflow: bool, amount: int, cp: str | None) -> None:
        """Subtract a counted transaction; the caller re-derives the account's last booking."""
        if inflow:
            self.in_amount -= amount
            self.in_count -= 1
        else:
            self.out_amount -= amount
            self.out_count -= 1
        if cp is not None:
            left = self.counterparties[cp] - 1
            if left:
                self.counterparties[cp] = left
            else:
                del self.counterparties[cp]

    def encode(self) -> bytes:
        return codec.dumps(
            [
                self.in_amount,
                self.in_count,
                self.out_amount,
                self.out_count,
                self.counterparties,
                self.accounts,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> MonthAgg:
        agg = cls()
        (
            agg.in_amount,
            agg.in_count,
            agg.out_amount,
            agg.out_count,
            agg.counterparties,
            agg.accounts,
        ) = codec.loads(data)
        return agg

    def view(self) -> dict[str, Any]:
        """What the API needs of this month: no txn ids, no raw identifiers."""
        return {
            "in_amount": self.in_amount,
            "in_count": self.in_count,
            "out_amount": self.out_amount,
            "out_count": self.out_count,
            "counterparties": sorted(self.counterparties),
            "balances": {acct: last[2] for acct, last in self.accounts.items()},
        }
