"""The month aggregate's last-of-day balances, kept at times of day (state/month.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine import codec
from engine.periods import CST, month_day_of_us, time_of_day_us
from state.month import MonthAgg

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(text: str) -> int:
    """Epoch microseconds of a CST wall-clock time."""
    return (datetime.fromisoformat(text).replace(tzinfo=CST) - _EPOCH) // timedelta(microseconds=1)


def _book(agg: MonthAgg, at: str, txn_id: str, balance: int) -> None:
    booked_us = _us(at)
    _, day = month_day_of_us(booked_us)
    agg.book_balance("acct", "BANK0001", day, booked_us, txn_id, balance)


def _balances(agg: MonthAgg) -> dict[str, int]:
    days: dict[str, int] = agg.view()["accounts"]["acct"]["days"]
    return days


def test_the_last_booking_of_a_cst_day_wins_across_utc_midnight() -> None:
    # 08:00 CST is midnight UTC: a time of day taken in UTC would put 08:01 before 07:59.
    agg = MonthAgg()
    _book(agg, "2026-06-03T08:01:00", "b", 200)
    _book(agg, "2026-06-03T07:59:00", "a", 100)
    _book(agg, "2026-06-03T23:59:59", "c", 300)
    _book(agg, "2026-06-03T00:00:00", "z", 50)
    assert _balances(agg) == {"3": 300}
    assert not agg.unbook_balance("acct", 3, _us("2026-06-03T23:59:59"), "c")
    assert _balances(agg) == {"3": 200}  # the second, 08:01, is last now


def test_the_same_instant_is_ordered_by_txn_id() -> None:
    agg = MonthAgg()
    _book(agg, "2026-06-03T12:00:00", "b", 2)
    _book(agg, "2026-06-03T12:00:00", "a", 1)
    assert _balances(agg) == {"3": 2}


def test_a_format_1_month_with_epoch_microseconds_decodes_to_times_of_day() -> None:
    agg = MonthAgg()
    _book(agg, "2026-06-03T07:59:00", "a", 100)
    _book(agg, "2026-06-03T08:01:00", "b", 200)
    _book(agg, "2026-06-04T09:00:00", "c", 300)
    parts = codec.loads(agg.encode())
    assert len(parts) == 9 and parts[7] == 2
    # Format 1: seven parts, bookings at their epoch microseconds.
    old = parts[:7]
    days = old[4]["acct"]["days"]
    days["3"] = [_us("2026-06-03T08:01:00"), "b", 200, [_us("2026-06-03T07:59:00"), "a", 100]]
    days["4"] = [_us("2026-06-04T09:00:00"), "c", 300, None]
    decoded = MonthAgg.decode(codec.dumps(old))
    assert decoded.encode() == agg.encode()
    assert decoded.accounts["acct"]["days"]["3"][0] == (8 * 3600 + 60) * 10**6
    assert time_of_day_us(_us("2026-06-03T08:01:00")) == (8 * 3600 + 60) * 10**6


def test_each_later_booking_makes_the_last_the_second_whatever_the_second_was() -> None:
    agg = MonthAgg()
    _book(agg, "2026-06-03T10:00:00", "a", 1)  # no second
    _book(agg, "2026-06-03T11:00:00", "b", 2)  # a is second
    _book(agg, "2026-06-03T12:00:00", "c", 3)  # b is second, a forgotten
    assert _balances(agg) == {"3": 3}
    assert not agg.unbook_balance("acct", 3, _us("2026-06-03T12:00:00"), "c")
    assert _balances(agg) == {"3": 2}  # b is last, its second unknown
    _book(agg, "2026-06-03T13:00:00", "d", 4)  # the unknown second becomes b
    assert not agg.unbook_balance("acct", 3, _us("2026-06-03T13:00:00"), "d")
    assert _balances(agg) == {"3": 2}
    # b's second is unknown again: removing it needs the ledger.
    assert agg.unbook_balance("acct", 3, _us("2026-06-03T11:00:00"), "b")


def test_a_month_written_before_marks_decodes_with_none() -> None:
    agg = MonthAgg()

    def loan(sign: int) -> None:  # CNY 0.05 from the account-holding bank, on the 3rd
        agg.change(
            sign,
            inflow=True,
            amount=5,
            cls="BANK_OWN",
            subtype="",
            channel="loan",
            currency="CNY",
            cross_border=False,
            day=3,
            party="p",
            registry=1,
        )

    loan(1)
    assert agg.marks == {"3": {"loan_in|BANK_OWN|p": [5, 1]}}  # kept by lender
    before = codec.dumps(codec.loads(agg.encode())[:8])  # format 2 as first written
    assert MonthAgg.decode(before).marks == {}
    assert MonthAgg.decode(agg.encode()).marks == agg.marks
    loan(-1)
    assert agg.marks == {}  # a reversal leaves no empty day behind


def test_a_persons_cash_deposit_carries_two_marks_and_its_reversal_removes_both() -> None:
    agg = MonthAgg()

    def deposit(sign: int, cls: str, individual: bool) -> None:  # on the 9th
        agg.change(
            sign,
            inflow=True,
            amount=700,
            cls=cls,
            subtype="",
            channel="cash" if cls == "CASH" else "transfer",
            currency="CNY",
            cross_border=False,
            day=9,
            party="p",
            registry=1,
            individual=individual,
        )

    deposit(1, "CASH", True)
    deposit(1, "PSP", False)
    deposit(1, "SELF", True)  # the firm's own money, whatever its kind: no mark
    assert agg.marks == {"9": {"cash_in": [700, 1], "from_person": [700, 1], "psp_in": [700, 1]}}
    deposit(-1, "CASH", True)
    deposit(-1, "PSP", False)
    assert agg.marks == {}


def test_public_payments_are_marked_by_day_beside_a_person_paid_so() -> None:
    agg = MonthAgg()

    def pay(sign: int, cls: str, subtype: str, individual: bool = False) -> None:  # the 4th
        agg.change(
            sign,
            inflow=False,
            amount=300,
            cls=cls,
            subtype=subtype,
            channel="payroll" if cls == "PAYROLL" else "transfer",
            currency="CNY",
            cross_border=False,
            day=4,
            party="p",
            registry=1,
            individual=individual,
        )

    for subtype in ("power", "water", "gas", "heating", "other"):  # not heating, not other
        pay(1, "UTILITY", subtype)
    pay(1, "PAYROLL", "", individual=True)  # salaries: not money to a person
    pay(1, "TAX", "", individual=True)  # a person collecting tax: both
    assert agg.marks == {
        "4": {
            "power_paid": [300, 1],
            "water_paid": [300, 1],
            "gas_paid": [300, 1],
            "payroll_paid": [300, 1],
            "tax_paid": [300, 1],
            "to_person": [300, 1],
        }
    }
    for subtype in ("power", "water", "gas", "heating", "other"):
        pay(-1, "UTILITY", subtype)
    pay(-1, "PAYROLL", "", individual=True)
    pay(-1, "TAX", "", individual=True)
    assert agg.marks == {}
