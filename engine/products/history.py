"""An enterprise's published months, read back, with the queries the item kernels share.

A :class:`MonthView` is one month as a worker publishes it (state/month.py ``view()``);
:class:`Carried`, what the enterprise keeps of the months pruned from its history
(state/horizon.py); :class:`SignalEpisode`, an episode of a signal rule the workers kept
(state/signals.py); :class:`History` holds them and answers: flows by direction and class,
daily balances, counterparties over a set of months, where the record starts, the days an
episode of a rule was open.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, NamedTuple

from engine.periods import days_in_month, parse_month

__all__ = [
    "Carried",
    "Flow",
    "History",
    "MonthView",
    "Party",
    "SignalEpisode",
    "episodes_from_json",
]


class Flow(NamedTuple):
    inflow: bool
    cls: str
    subtype: str
    bank_channel: str  # loan | interest | fee | other for BANK_OWN, "" otherwise
    amount: int
    txns: int


class Party(NamedTuple):
    inflow: int
    outflow: int
    txns: int


class Day(NamedTuple):
    inflow: int
    outflow: int
    operating_in: int
    operating_out: int
    txns: int


@dataclass(frozen=True, slots=True)
class MonthView:
    flows: tuple[Flow, ...]
    cross: Mapping[str, tuple[int, int]]  # "i"/"o" -> (amount, count)
    currency: Mapping[str, int]
    days: Mapping[int, Day]
    accounts: Mapping[str, tuple[str, Mapping[int, int]]]  # account -> (bank, day -> balance)
    parties: Mapping[tuple[str, str], Party]  # (class, counterparty) -> flows with it
    registry: Mapping[int, int]
    # day -> mark -> amount: what the signal rules follow by day (state/month.py's marks;
    # absent from views published before they existed)
    marks: Mapping[int, Mapping[str, int]] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> MonthView:
        flows = []
        for key, (amount, count) in doc["flows"].items():
            direction, klass, subtype, bank_channel = key.split("|")
            flows.append(Flow(direction == "i", klass, subtype, bank_channel, amount, count))
        return cls(
            flows=tuple(flows),
            cross={k: (v[0], v[1]) for k, v in doc["cross"].items()},
            currency=dict(doc["currency"]),
            days={int(d): Day(*v) for d, v in doc["days"].items()},
            accounts={
                a: (e["bank"], {int(d): b for d, b in e["days"].items()})
                for a, e in doc["accounts"].items()
            },
            parties={_split(k): Party(*v) for k, v in doc["parties"].items()},
            registry={int(k): v for k, v in doc["registry"].items()},
            marks={
                int(d): {mark: amount for mark, (amount, _) in marks.items()}
                for d, marks in doc.get("marks", {}).items()
            },
        )


EMPTY = MonthView((), {}, {}, {}, {}, {}, {})
_NO_MARKS: Mapping[str, int] = {}


@dataclass(frozen=True, slots=True)
class Carried:
    """What pruning kept of the months before ``kept_from`` (state/horizon.py's view)."""

    kept_from: int  # month ordinal: the first month of the kept history
    first_day: date | None  # the first transaction ever booked
    last_day: date | None  # the last pruned one
    accounts: Mapping[str, tuple[str, int]]  # account -> (bank, balance after its last)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Carried:
        kept_from = parse_month(doc["kept_from"])
        assert kept_from is not None
        return cls(
            kept_from=kept_from,
            first_day=date.fromisoformat(doc["first_day"]) if doc["first_day"] else None,
            last_day=date.fromisoformat(doc["last_day"]) if doc["last_day"] else None,
            accounts={a: (e["bank"], e["balance"]) for a, e in doc["accounts"].items()},
        )


class SignalEpisode(NamedTuple):
    """An episode of a signal rule (specs/signals.toml): open from ``opened`` on, until the
    day before ``closed`` (the first day the rule no longer held); None while it is open."""

    rule: str
    opened: date
    closed: date | None

    def covers(self, day: date) -> bool:
        return self.opened <= day and (self.closed is None or day < self.closed)


def episodes_from_json(doc: Iterable[Any]) -> tuple[SignalEpisode, ...]:
    """The views hash's field "e" (state/signals.py's encode_kept): [rule, opened, closed]."""
    return tuple(
        SignalEpisode(
            rule, date.fromisoformat(opened), date.fromisoformat(closed) if closed else None
        )
        for rule, opened, closed in doc
    )


def _month_of(day: date) -> int:
    return day.year * 12 + day.month - 1


@dataclass(frozen=True, slots=True)
class History:
    """Every kept month of one enterprise that has data, by month ordinal, what its
    pruned months left (None while nothing was pruned), and its signal episodes."""

    months: Mapping[int, MonthView]
    carried: Carried | None = None
    episodes: tuple[SignalEpisode, ...] = ()
    _sorted: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_sorted", tuple(sorted(self.months)))

    def month(self, month: int) -> MonthView:
        return self.months.get(month, EMPTY)

    @property
    def kept_from(self) -> int | None:
        """The first month of the kept history, or None while nothing was pruned."""
        return None if self.carried is None else self.carried.kept_from

    def first_day(self) -> date | None:
        """The day of the enterprise's first transaction, pruned or kept."""
        if self.carried is not None and self.carried.first_day is not None:
            return self.carried.first_day
        if not self._sorted:
            return None
        first = self._sorted[0]
        year, m0 = divmod(first, 12)
        return date(year, m0 + 1, min(self.months[first].days))

    def last_day(self, until_month: int) -> date | None:
        """The day of the last transaction at or before the end of ``until_month``."""
        kept = [m for m in self._sorted if m <= until_month]
        if kept:
            year, m0 = divmod(kept[-1], 12)
            return date(year, m0 + 1, max(self.months[kept[-1]].days))
        if self.carried is not None and self.carried.last_day is not None:
            return (
                self.carried.last_day if _month_of(self.carried.last_day) <= until_month else None
            )
        return None

    def first_month(self) -> int | None:
        """The month of the enterprise's first transaction, pruned or kept."""
        first = self.first_day()
        return None if first is None else _month_of(first)

    def record_start(self) -> int | None:
        """The first month on record: the firm's first month, or the first kept month when
        older ones were pruned. Windows and earlier quarters read no month before it."""
        first = self.first_month()
        if first is None or self.kept_from is None:
            return first
        return max(first, self.kept_from)

    def has_data_until(self, month: int) -> bool:
        first = self.first_month()
        return first is not None and first <= month

    def flows(
        self,
        months: Iterable[int],
        inflow: bool | None = None,
        classes: Iterable[str] | None = None,
        subtype: str | None = None,
        bank_channel: str | None = None,
    ) -> tuple[int, int]:
        """(amount, count) of the flows matching every given filter."""
        wanted = None if classes is None else set(classes)
        amount = count = 0
        for month in months:
            for flow in self.month(month).flows:
                if inflow is not None and flow.inflow != inflow:
                    continue
                if wanted is not None and flow.cls not in wanted:
                    continue
                if subtype is not None and flow.subtype != subtype:
                    continue
                if bank_channel is not None and flow.bank_channel != bank_channel:
                    continue
                amount += flow.amount
                count += flow.txns
        return amount, count

    def days(self, months: Iterable[int]) -> list[Day]:
        """Every calendar day of the months, in order (empty days are zeros)."""
        result = []
        for month in months:
            view = self.month(month)
            for day in range(1, days_in_month(month) + 1):
                result.append(view.days.get(day, _NO_DAY))
        return result

    def marks(self, months: Iterable[int]) -> list[Mapping[str, int]]:
        """Every calendar day's marks (mark -> amount) of the months, in order, aligned with
        :meth:`days` (a day without one is empty)."""
        result: list[Mapping[str, int]] = []
        for month in months:
            view = self.month(month)
            for day in range(1, days_in_month(month) + 1):
                result.append(view.marks.get(day, _NO_MARKS))
        return result

    def parties(self, months: Iterable[int]) -> dict[tuple[str, str], Party]:
        """(class, counterparty) over the months: amounts and counts summed."""
        merged: dict[tuple[str, str], Party] = {}
        for month in months:
            for key, party in self.month(month).parties.items():
                seen = merged.get(key)
                merged[key] = (
                    party
                    if seen is None
                    else Party(
                        seen.inflow + party.inflow,
                        seen.outflow + party.outflow,
                        seen.txns + party.txns,
                    )
                )
        return merged

    def signal_days(self, rule: str, days: Iterable[date]) -> int:
        """How many of ``days`` an episode of ``rule`` covers (overlapping episodes: once)."""
        episodes = [e for e in self.episodes if e.rule == rule]
        return sum(1 for day in days if any(e.covers(day) for e in episodes))

    def balances_at_end_of(self, month: int) -> dict[str, int]:
        """Each account's balance after its last booking at or before the end of ``month``."""
        seen: dict[str, int] = {}
        for m in reversed(self._sorted):
            if m > month:
                continue
            for account, (_, days) in self.month(m).accounts.items():
                if account not in seen and days:
                    seen[account] = days[max(days)]
        if self.carried is not None:  # accounts whose last booking was pruned
            for account, (_, balance) in self.carried.accounts.items():
                seen.setdefault(account, balance)
        return seen

    def daily_balances(self, months: list[int]) -> list[int | None]:
        """End-of-day total balance for every day of ``months`` (consecutive), or None for a
        day before any account has a booking."""
        return [None if p is None else p[0] for p in self.daily_positions(months)]

    def daily_positions(self, months: list[int]) -> list[tuple[int, bool] | None]:
        """For every day of ``months`` (consecutive): the end-of-day total balance and
        whether any one account ends the day below zero (an overdraft is judged per account:
        another account's credit balance does not net it away); None for a day before any
        account has a booking."""
        accounts = self.balances_at_end_of(months[0] - 1)
        result: list[tuple[int, bool] | None] = []
        for month in months:
            view = self.month(month)
            for day in range(1, days_in_month(month) + 1):
                for account, (_, days) in view.accounts.items():
                    if day in days:
                        accounts[account] = days[day]
                if accounts:
                    values = accounts.values()
                    result.append((sum(values), min(values) < 0))
                else:
                    result.append(None)
        return result


_NO_DAY = Day(0, 0, 0, 0, 0)


def _split(key: str) -> tuple[str, str]:
    cls, _, party = key.partition("|")
    return cls, party
