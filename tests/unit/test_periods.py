from engine.events.contract import Txn, validate
from engine.periods import (
    Period,
    format_month,
    month_end_us,
    month_of_us,
    month_start_us,
    parse_month,
    parse_quarter,
)
from tests.factories import event


def _us(booked_at: str) -> int:
    txn = validate(event(booked_at=booked_at), "BANK0001")
    assert isinstance(txn, Txn)
    return txn.booked_us


def test_a_utc_time_late_on_the_last_day_belongs_to_the_next_month_in_china() -> None:
    assert format_month(month_of_us(_us("2026-01-31T15:59:59Z"))) == "2026-01"
    assert format_month(month_of_us(_us("2026-01-31T16:00:00Z"))) == "2026-02"
    assert format_month(month_of_us(_us("2025-12-31T16:00:00Z"))) == "2026-01"


def test_month_bounds_are_midnight_in_china() -> None:
    march = parse_month("2026-03")
    assert march is not None
    assert month_start_us(march) == _us("2026-03-01T00:00:00+08:00")
    assert month_end_us(march) == _us("2026-04-01T00:00:00+08:00") - 1


def test_period_parsing() -> None:
    assert parse_month("2026-13") is None and parse_month("2026-1") is None
    assert parse_quarter("2026Q4") == (2026, 4) and parse_quarter("2026Q5") is None
    q = Period.quarterly("2026Q1")
    assert q is not None and [format_month(m) for m in q.months] == [
        "2026-01",
        "2026-02",
        "2026-03",
    ]
    assert q.is_partial(month_end_us(q.last_month)) and not q.is_partial(
        month_end_us(q.last_month) + 1
    )
