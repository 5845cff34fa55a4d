"""One enterprise's aggregate for one calendar month (CST), and its published view.

Everything here is kept incrementally and is reversible: a transaction adds to it, its
reversal subtracts exactly what it added. Counterparties and accounts appear only as
pseudonyms. The parts:

- flows:    (direction, class, subtype, bank channel) -> [amount, count]
- cross:    direction -> [amount, count] of cross-border transactions
- currency: foreign currency -> count
- days:     day of month -> [inflow, outflow, operating inflow, operating outflow, count]
- accounts: account -> {"bank": code, "days": {day: [at_us, txn_id, balance, *second]}},
            the last booking of each day in (booked_at, txn_id) order, ``at_us`` its time
            of day (microseconds since the CST day began: bookings are only compared within
            their day, and 11 digits take less state than 16). ``second`` is the booking
            before it ([at_us, txn_id, balance], or None when there is none), absent when
            unknown: removing the last then needs no look at the ledger unless the second
            is unknown (state only, never in the view). Methods take epoch microseconds.
- parties:  "class|counterparty" -> [inflow, outflow, count] (every class but SELF; one
            counterparty can appear in several classes, e.g. by channel)
- registry: registry version -> transactions it classified
- marks:    day of month -> {mark: [amount, count]}, the flows followed by day that the
            other parts cannot tell apart (:func:`mark_of`: loans received, money to persons,
            to the firm's own accounts and to lenders, judicial deductions, cash deposits,
            platform settlements, money from persons, the public payments that the quarterly
            compares year on year); only days that have one. Loans
            received and paid are kept by lender, "loan_in|<class>|<counterparty>": a loan
            renewed with the lender that lent it is told from one repaying another lender
"""

from __future__ import annotations

from typing import Any, NamedTuple

from engine import codec
from engine.periods import time_of_day_us
from engine.products.classify import (
    BANK_CHANNELS,
    LENDING,
    OPERATING_IN,
    OPERATING_OUT,
    CounterpartyClass,
)

__all__ = ["UNKNOWN", "Contribution", "MonthAgg", "contribution", "flow_key", "mark_of"]

UNKNOWN: Any = object()  # a day's second booking that is not known
# Day keys are JSON object keys (strings); built once rather than per event.
_DAY_KEYS = tuple(str(day) for day in range(32))
# The encoded form's trailing format number. Format 1 had no number (seven parts) and kept
# epoch microseconds where format 2 keeps times of day; it is converted when decoded.
_FORMAT = 2


def flow_key(inflow: bool, cls: str, subtype: str, channel: str) -> str:
    """``i|BANK_OWN||loan``: the channel is kept for the account-holding bank only."""
    if cls == CounterpartyClass.BANK_OWN:
        bank_channel = channel if channel in BANK_CHANNELS else "other"
    else:
        bank_channel = ""
    return f"{'i' if inflow else 'o'}|{cls}|{subtype}|{bank_channel}"


class Contribution(NamedTuple):
    """The keys one transaction changes in a month, apart from its amount and day.

    They depend only on its class, counterparty, channel, currency, direction and registry
    version, so the ledger computes them once per distinct combination rather than per event.
    """

    flow: str  # key in ``flows``
    slot: int  # 0 inflow, 1 outflow: the column of ``days`` and ``parties``
    operating: bool  # counted in the day's operating inflow or outflow
    cross: str | None  # key in ``cross`` when cross-border
    currency: str | None  # key in ``currency`` when not CNY
    party: str | None  # key in ``parties`` (None for SELF)
    registry: str  # key in ``registry``
    marks: tuple[str, ...] = ()  # keys in a day of ``marks`` (a cash deposit by a person: two)


def contribution(
    *,
    inflow: bool,
    cls: str,
    subtype: str,
    channel: str,
    currency: str,
    cross_border: bool,
    party: str | None,
    registry: int,
    individual: bool = False,
) -> Contribution:
    operating = cls in (OPERATING_IN if inflow else OPERATING_OUT)
    return Contribution(
        flow=flow_key(inflow, cls, subtype, channel),
        slot=0 if inflow else 1,
        operating=operating,
        cross=("i" if inflow else "o") if cross_border else None,
        currency=None if currency == "CNY" else currency,
        party=None if party is None else f"{cls}|{party}",
        registry=str(registry),
        marks=tuple(
            _mark_key(mark, party, cls)
            for mark in mark_of(inflow, cls, subtype, channel, individual)
        ),
    )


def _mark_key(mark: str, party: str | None, cls: str) -> str:
    if mark in ("loan_in", "to_lender"):
        return f"{mark}|{cls}|{party}"
    return mark


# The inflows marked by their class (a loan is marked by lender; the rest by kind alone).
_IN_MARKS: dict[str, str] = {CounterpartyClass.CASH: "cash_in", CounterpartyClass.PSP: "psp_in"}
# The public payments marked by day: a partial quarter compares them with as many first days
# of the same quarter a year earlier, which the flows (kept by month) cannot say. Utilities by
# subtype, salaries and tax by class whatever their subtype.
_UTILITY_PAID: dict[str, str] = {"power": "power_paid", "water": "water_paid", "gas": "gas_paid"}
_CLASS_PAID: dict[str, str] = {
    CounterpartyClass.PAYROLL: "payroll_paid",
    CounterpartyClass.TAX: "tax_paid",
}


def mark_of(
    inflow: bool, cls: str, subtype: str, channel: str, individual: bool
) -> tuple[str, ...]:
    """What is followed of a transaction by day (none, one, or two marks):

    - ``loan_in``: a loan received: from the account-holding bank on channel loan, or from a
      financing partner that lends (bank, lender, lessor, factor);
    - ``cash_in``: a cash deposit (CASH); ``psp_in``: a platform's settlement (PSP): the
      days keep inflow by day and the flows by class, neither both: these say which days;
    - ``from_person``: received from an individual, the firm's own accounts (SELF) apart,
      whatever its class (a person may deposit cash, or lend): the flows do not know kinds;
    - ``to_person``: paid to an individual, salaries (PAYROLL) apart;
    - ``to_self``: moved to the firm's own account elsewhere (SELF);
    - ``to_lender``: paid to a lending partner, or principal to the account-holding bank;
    - ``judicial``: deducted by a court (JUDICIAL);
    - ``power_paid``, ``water_paid``, ``gas_paid``, ``payroll_paid``, ``tax_paid``: paid to
      a power, water or gas utility, as salaries (PAYROLL), or as tax (TAX), beside
      ``to_person`` when a person is paid so.
    """
    lending = (cls == CounterpartyClass.BANK_OWN and channel == "loan") or (
        cls == CounterpartyClass.FIN_PARTNER and subtype in LENDING
    )
    if inflow:
        by_class = _IN_MARKS.get(cls, "loan_in" if lending else None)
        person = individual and cls != CounterpartyClass.SELF
        if by_class is None:
            return ("from_person",) if person else ()
        return (by_class, "from_person") if person else (by_class,)
    paid = _UTILITY_PAID.get(subtype) if cls == CounterpartyClass.UTILITY else _CLASS_PAID.get(cls)
    marks = _out_mark(cls, lending, individual)
    return marks if paid is None else (paid, *marks)


def _out_mark(cls: str, lending: bool, individual: bool) -> tuple[str, ...]:
    if cls == CounterpartyClass.JUDICIAL:
        return ("judicial",)
    if lending:
        return ("to_lender",)
    if cls == CounterpartyClass.SELF:
        return ("to_self",)
    if individual and cls != CounterpartyClass.PAYROLL:
        return ("to_person",)
    return ()


def _at_time_of_day(booking: list[Any]) -> list[Any]:
    """[booked_us, txn_id, balance] with its time of day instead of the instant."""
    return [time_of_day_us(booking[0]), *booking[1:3]]


def _bump(table: dict[str, list[int]], key: str, signed: int, sign: int) -> None:
    entry = table.get(key)
    if entry is None:
        table[key] = [signed, sign]  # a count of +-1 is never zero
        return
    entry[0] += signed
    entry[1] += sign
    if entry[1] == 0:
        del table[key]


class MonthAgg:
    __slots__ = ("accounts", "cross", "currency", "days", "flows", "marks", "parties", "registry")

    def __init__(self) -> None:
        self.flows: dict[str, list[int]] = {}
        self.cross: dict[str, list[int]] = {}
        self.currency: dict[str, int] = {}
        self.days: dict[str, list[int]] = {}  # day as a string: JSON object keys
        self.accounts: dict[str, dict[str, Any]] = {}
        self.parties: dict[str, list[Any]] = {}
        self.registry: dict[str, int] = {}
        self.marks: dict[str, dict[str, list[int]]] = {}

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
        individual: bool = False,
    ) -> None:
        """Add (sign=1) or remove (sign=-1) one transaction's contribution, balances apart."""
        self.add(
            sign,
            amount,
            day,
            contribution(
                inflow=inflow,
                cls=cls,
                subtype=subtype,
                channel=channel,
                currency=currency,
                cross_border=cross_border,
                party=party,
                registry=registry,
                individual=individual,
            ),
        )

    def add(self, sign: int, amount: int, day: int, keys: Contribution) -> None:
        """:meth:`change` with its keys computed beforehand (the ledger's per-event path)."""
        flow, slot, operating, cross, currency, party, registry, marked = keys
        signed = sign * amount
        _bump(self.flows, flow, signed, sign)
        if cross is not None:
            _bump(self.cross, cross, signed, sign)
        if currency is not None:
            left = self.currency.get(currency, 0) + sign
            if left:
                self.currency[currency] = left
            else:
                del self.currency[currency]
        day_key = _DAY_KEYS[day]
        daily = self.days.get(day_key)
        if daily is None:
            daily = self.days[day_key] = [0, 0, 0, 0, 0]
        daily[slot] += signed
        if operating:
            daily[slot + 2] += signed
        daily[4] += sign
        if daily[4] == 0:
            del self.days[day_key]
        if party is not None:
            entry = self.parties.get(party)
            if entry is None:
                entry = self.parties[party] = [0, 0, 0]
            entry[slot] += signed
            entry[2] += sign
            if entry[2] == 0:
                del self.parties[party]
        left = self.registry.get(registry, 0) + sign
        if left:
            self.registry[registry] = left
        else:
            del self.registry[registry]
        if marked:
            marks = self.marks.get(day_key)
            if marks is None:
                marks = self.marks[day_key] = {}
            for mark in marked:
                _bump(marks, mark, signed, sign)
            if not marks:
                del self.marks[day_key]

    def book_balance(
        self, account: str, bank: str, day: int, booked_us: int, txn_id: str, balance: int
    ) -> None:
        """Record a booking's balance if it is the account's last of that day so far."""
        booked_us = time_of_day_us(booked_us)
        entry = self.accounts.get(account)
        if entry is None:
            entry = self.accounts[account] = {"bank": bank, "days": {}}
        days = entry["days"]
        key = _DAY_KEYS[day]
        last = days.get(key)
        if last is None:
            days[key] = [booked_us, txn_id, balance, None]  # the day's only booking
        elif (booked_us, txn_id) > (last[0], last[1]):
            days[key] = [booked_us, txn_id, balance, last[:3]]
        elif len(last) == 4 and (last[3] is None or (booked_us, txn_id) > tuple(last[3][:2])):
            last[3] = [booked_us, txn_id, balance]  # the new second; an unknown stays unknown

    def unbook_balance(self, account: str, day: int, booked_us: int, txn_id: str) -> bool:
        """Forget a removed booking's balance; True when the day's last must be re-derived
        from the ledger (the removed booking was the last and the one before is unknown)."""
        booked_us = time_of_day_us(booked_us)
        entry = self.accounts.get(account)
        last = None if entry is None else entry["days"].get(_DAY_KEYS[day])
        if last is None:
            return False
        if last[0] == booked_us and last[1] == txn_id:
            if len(last) < 4:
                return True
            self._set_last(account, day, last[3], UNKNOWN)  # the second is last now
            return False
        if len(last) == 4 and last[3] is not None and tuple(last[3][:2]) == (booked_us, txn_id):
            del last[3]  # the second is gone; which booking is second now is unknown
        return False

    def set_last_of_day(
        self, account: str, day: int, last: list[Any] | None, second: Any = UNKNOWN
    ) -> None:
        """Set the day's last booking (None: the day has none) and, if known, the second
        (a booking, or None when there is none); bookings are [booked_us, txn_id, balance]."""
        if second is not UNKNOWN and second is not None:
            second = _at_time_of_day(second)
        self._set_last(account, day, None if last is None else _at_time_of_day(last), second)

    def _set_last(self, account: str, day: int, last: list[Any] | None, second: Any) -> None:
        """:meth:`set_last_of_day` with bookings at their times of day."""
        entry = self.accounts.get(account)
        if entry is None:
            return
        if last is None:
            entry["days"].pop(_DAY_KEYS[day], None)
            if not entry["days"]:
                del self.accounts[account]
        else:
            entry["days"][_DAY_KEYS[day]] = last[:3] if second is UNKNOWN else [*last[:3], second]

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
                _FORMAT,
                self.marks,
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> MonthAgg:
        agg = cls()
        parts = codec.loads(data)
        (agg.flows, agg.cross, agg.currency, agg.days, agg.accounts, agg.parties, agg.registry) = (
            parts[:7]
        )
        # Months written before marks existed have none: what they hold is followed from the
        # next time the ledger rebuilds them (docs/signals.md).
        agg.marks = parts[8] if len(parts) > 8 else {}
        if len(parts) == 7:  # format 1: epoch microseconds
            for entry in agg.accounts.values():
                for last in entry["days"].values():
                    last[0] = time_of_day_us(last[0])
                    if len(last) == 4 and last[3] is not None:
                        last[3][0] = time_of_day_us(last[3][0])
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
            "marks": self.marks,
        }
