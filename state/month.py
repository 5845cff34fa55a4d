"""One enterprise's aggregate for one calendar month (CST), and its published view.

Everything here is kept incrementally and is reversible: a transaction adds to it, its
reversal subtracts exactly what it added. Counterparties and accounts appear only as
pseudonyms. The parts:

- flows:    (direction, class, subtype, bank channel) -> [amount, count]
- cross:    direction -> [amount, count] of cross-border transactions
- currency: foreign currency -> count
- days:     day of month -> [inflow, outflow, operating inflow, operating outflow, count]
- accounts: account -> {"bank": code, "days": {day: [booked_us, txn_id, balance, *second]}},
            the last booking of each day in (booked_at, txn_id) order. ``second`` is the
            booking before it ([booked_us, txn_id, balance], or None when there is none),
            absent when unknown: removing the last then needs no look at the ledger unless
            the second is unknown (state only, never in the view)
- parties:  "class|counterparty" -> [inflow, outflow, count] (every class but SELF; one
            counterparty can appear in several classes, e.g. by channel)
- registry: registry version -> transactions it classified
"""

from __future__ import annotations

from typing import Any

from engine import codec
from engine.classify import OPERATING_IN, OPERATING_OUT, CounterpartyClass

__all__ = ["UNKNOWN", "MonthAgg", "flow_key"]

_BANK_CHANNELS = ("loan", "interest", "fee")
UNKNOWN: Any = object()  # a day's second booking that is not known


def flow_key(inflow: bool, cls: str, subtype: str, channel: str) -> str:
    """``i|BANK_OWN||loan``: the channel is kept for the account-holding bank only."""
    if cls == CounterpartyClass.BANK_OWN:
        bank_channel = channel if channel in _BANK_CHANNELS else "other"
    else:
        bank_channel = ""
    return f"{'i' if inflow else 'o'}|{cls}|{subtype}|{bank_channel}"


def _bump(table: dict[str, list[int]], key: str, amount: int, sign: int) -> None:
    entry = table.get(key)
    if entry is None:
        entry = table[key] = [0, 0]
    entry[0] += sign * amount
    entry[1] += sign
    if entry[1] == 0:
        del table[key]


class MonthAgg:
    __slots__ = ("accounts", "cross", "currency", "days", "flows", "parties", "registry")

    def __init__(self) -> None:
        self.flows: dict[str, list[int]] = {}
        self.cross: dict[str, list[int]] = {}
        self.currency: dict[str, int] = {}
        self.days: dict[str, list[int]] = {}  # day as a string: JSON object keys
        self.accounts: dict[str, dict[str, Any]] = {}
        self.parties: dict[str, list[Any]] = {}
        self.registry: dict[str, int] = {}

    @property
    def is_empty(self) -> bool:
        return not self.flows

    def change(
        self,
        sign: int,
        *,
        inflow: bool,
        amount: int,
        cls: str,
        subtype: str,
        channel: str,
        currency: str,
        cross_border: bool,
        day: int,
        party: str | None,
        registry: int,
    ) -> None:
        """Add (sign=1) or remove (sign=-1) one transaction's contribution, balances apart."""
        _bump(self.flows, flow_key(inflow, cls, subtype, channel), amount, sign)
        direction = "i" if inflow else "o"
        if cross_border:
            _bump(self.cross, direction, amount, sign)
        if currency != "CNY":
            left = self.currency.get(currency, 0) + sign
            if left:
                self.currency[currency] = left
            else:
                self.currency.pop(currency, None)
        daily = self.days.setdefault(str(day), [0, 0, 0, 0, 0])
        operating = (OPERATING_IN if inflow else OPERATING_OUT).__contains__(cls)
        slot = 0 if inflow else 1
        daily[slot] += sign * amount
        if operating:
            daily[slot + 2] += sign * amount
        daily[4] += sign
        if daily[4] == 0:
            del self.days[str(day)]
        if party is not None:
            key = f"{cls}|{party}"
            entry = self.parties.get(key)
            if entry is None:
                entry = self.parties[key] = [0, 0, 0]
            entry[0 if inflow else 1] += sign * amount
            entry[2] += sign
            if entry[2] == 0:
                del self.parties[key]
        version = str(registry)
        left = self.registry.get(version, 0) + sign
        if left:
            self.registry[version] = left
        else:
            self.registry.pop(version, None)

    def book_balance(
        self, account: str, bank: str, day: int, booked_us: int, txn_id: str, balance: int
    ) -> None:
        """Record a booking's balance if it is the account's last of that day so far."""
        entry = self.accounts.get(account)
        if entry is None:
            entry = self.accounts[account] = {"bank": bank, "days": {}}
        days = entry["days"]
        key = str(day)
        last = days.get(key)
        booking = [booked_us, txn_id, balance]
        if last is None:
            days[key] = [*booking, None]  # the day's only booking
        elif (booked_us, txn_id) > (last[0], last[1]):
            days[key] = [*booking, last[:3]]
        elif len(last) == 4 and (last[3] is None or (booked_us, txn_id) > tuple(last[3][:2])):
            last[3] = booking  # the new second; an unknown second stays unknown

    def unbook_balance(self, account: str, day: int, booked_us: int, txn_id: str) -> bool:
        """Forget a removed booking's balance; True when the day's last must be re-derived
        from the ledger (the removed booking was the last and the one before is unknown)."""
        entry = self.accounts.get(account)
        last = None if entry is None else entry["days"].get(str(day))
        if last is None:
            return False
        if last[0] == booked_us and last[1] == txn_id:
            if len(last) < 4:
                return True
            self.set_last_of_day(account, day, last[3])  # the second is last now
            return False
        if len(last) == 4 and last[3] is not None and tuple(last[3][:2]) == (booked_us, txn_id):
            del last[3]  # the second is gone; which booking is second now is unknown
        return False

    def set_last_of_day(
        self, account: str, day: int, last: list[Any] | None, second: Any = UNKNOWN
    ) -> None:
        """Set the day's last booking (None: the day has none) and, if known, the second
        (a booking, or None when there is none)."""
        entry = self.accounts.get(account)
        if entry is None:
            return
        if last is None:
            entry["days"].pop(str(day), None)
            if not entry["days"]:
                del self.accounts[account]
        else:
            entry["days"][str(day)] = last[:3] if second is UNKNOWN else [*last[:3], second]

    def encode(self) -> bytes:
        return codec.dumps(
            [
                self.flows,
                self.cross,
                self.currency,
                self.days,
                self.accounts,
                self.parties,
                self.registry,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> MonthAgg:
        agg = cls()
        (agg.flows, agg.cross, agg.currency, agg.days, agg.accounts, agg.parties, agg.registry) = (
            codec.loads(data)
        )
        return agg

    def view(self) -> dict[str, Any]:
        """What the API needs of this month: no txn ids, no raw identifiers."""
        return {
            "flows": self.flows,
            "cross": self.cross,
            "currency": self.currency,
            "days": self.days,
            "accounts": {
                account: {
                    "bank": entry["bank"],
                    "days": {day: last[2] for day, last in entry["days"].items()},
                }
                for account, entry in self.accounts.items()
            },
            "parties": self.parties,
            "registry": self.registry,
        }
