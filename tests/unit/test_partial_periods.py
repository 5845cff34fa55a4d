"""Days that have not happened yet are not days (spec version 4, issue 15 part 1).

A period pulled before it ends (``partial: true``) is computed over its days up to the
pull's day, China time: no flag, gap or ratio fires because the period is not over, and a
period that is over gives what it gave before the pull's clock reached the kernels.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from engine import codec
from engine.api.product_cache import ProductCache
from engine.api.products import ProductService
from engine.events.contract import Txn, validate
from engine.metrics import ApiMetrics
from engine.periods import DAY_US, Period, month_end_us
from engine.products.assemble import clock_day
from engine.products.classify import load_registry
from engine.products.history import History, MonthView
from engine.products.kernels import KERNELS, Context
from engine.products.specs import SPECS_DIR, load_products
from engine.pseudonym import Pseudonymizer
from state.ledger import PartitionLedger
from state.ledger_types import Source
from state.memory import MemoryStore
from state.queries import QueryIndex
from state.tracking import InvalidationListener
from state.views import ViewStore
from tests import reference
from tests.compare import differences
from tests.sql_scenarios import CST, ENTERPRISES, _Log
from tests.strategies import transaction_log

_REGISTRY = load_registry(SPECS_DIR / "registries.toml")
_SPECS = load_products()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _histories(log: list[dict[str, Any]]) -> dict[str, History]:
    """Each enterprise's month views, as a worker publishes them."""
    ledger = PartitionLedger(MemoryStore(), Pseudonymizer(b"test-key"), lambda: _REGISTRY)
    for offset, element in enumerate(log):
        txn = validate(element, element["bank"])
        if isinstance(txn, Txn):
            ledger.apply(txn, Source(f"bank.{element['bank']}.txns", 0, offset, None))
    ledger.commit(len(log))
    return {
        enterprise: History(
            {m: MonthView.from_json(codec.loads(codec.dumps(a.view()))) for m, a in months.items()}
        )
        for enterprise, months in ledger.enterprises()
    }


def _period(label: str) -> Period:
    period = Period.quarterly(label) if "Q" in label else Period.monthly(label)
    assert period is not None
    return period


def _items(history: History, label: str, as_of_us: int | None) -> dict[str, Any]:
    period = _period(label)
    spec = _SPECS[period.kind]
    ctx = Context(history, period, spec.parameters, as_of_us=as_of_us)
    return {
        item.id: KERNELS[item.id](ctx)
        for segment in spec.segments
        for item in segment.items
        if item.id in reference.ITEMS
    }


def _steady_firm() -> tuple[str, list[dict[str, Any]]]:
    """Paid by a customer on the 3rd and the 20th of every month of 2025, a supplier paid on
    the 12th; in 2026: paid on 3 February, overdrawn by a supplier's payment on the 10th,
    a payment platform's settlement on the 14th."""
    firm = ENTERPRISES[7]
    log = _Log(firm, {("ICBC0001", "ACC-1"): 20_000})
    for month in range(1, 13):
        d = f"2025-{month:02d}"
        log.add(f"{d}-03 10:00", "in", 500_000, "CUST-A")
        log.add(f"{d}-12 10:00", "out", 600_000, "SUPP-A")
        log.add(f"{d}-20 10:00", "in", 400_000, "CUST-B")
    log.add("2026-01-03 10:00", "in", 500_000, "CUST-A")
    log.add("2026-02-03 10:00", "in", 90_000, "CUST-A")
    log.add("2026-02-10 10:00", "out", 5_000_000, "SUPP-A")
    log.add("2026-02-14 09:00", "in", 10_000, "PSP-ALIPAY-0001")
    return firm, log.balanced()


def test_a_firm_overdrawn_from_the_10th_pulled_on_the_14th_has_five_overdrawn_days() -> None:
    firm, log = _steady_firm()
    history = _histories(log)[firm]
    pull = _us(datetime(2026, 2, 14, 12, 0, tzinfo=CST))
    month, quarter = _items(history, "2026-02", pull), _items(history, "2026Q1", pull)
    # 10 to 14 February, not 10 to 28 February (19) nor to 31 March (50)
    assert month["negative_balance_days"] == quarter["negative_balance_days"] == 5
    assert month["low_balance_days"] == quarter["low_balance_days"] == 5
    # the average daily balance is over the 14 days of February so far
    ledger_balances = history.daily_balances([_period("2026-02").first_month])[:14]
    assert month["average_daily_balance_fen"] == sum(b or 0 for b in ledger_balances) // 14
    # over the whole month the same firm would read 19 overdrawn days
    assert _items(history, "2026-02", None)["negative_balance_days"] == 19


def test_a_quarter_pulled_in_its_first_weeks_raises_nothing_from_days_not_lived() -> None:
    firm, log = _steady_firm()
    # what the worker has at the pull: nothing booked after 5 January
    history = _histories([e for e in log if e["booked_at"] < "2026-01-06"])[firm]
    pull = _us(datetime(2026, 1, 5, 12, 0, tzinfo=CST))  # paid on the 3rd: five days lived
    items = _items(history, "2026Q1", pull)
    assert items["longest_no_operating_inflow_days"] == 2  # the 4th and the 5th
    # five days of 2026 against the first five days of 2025Q4 (paid on 3 October), not
    # against the whole fourth quarter
    assert items["operating_inflow_qoq_growth"] == 0.0
    # the last transaction is the 3rd's: two days before the pull, not 88 before the
    # quarter's end (spec version 11 left the count of days to the reader of the date)
    assert items["last_transaction_date"] == "2026-01-03"
    # the quarter's operating inflow is what its five days brought, not a mean over months
    # not lived (the monthly mean went in spec version 11)
    assert items["operating_inflow_fen"] == 500_000
    # no customer is lost while the quarter has weeks to go
    assert items["lost_customers"] is None
    assert items["customer_retention_ratio"] is None
    # W(n) is the n whole months before the pull's month (2025, paid 900,000 every month):
    # January's five days and the months to come are not months without inflow
    assert items["ttm_operating_inflow_fen"] == 12 * 900_000
    assert items["zero_operating_inflow_months_12m"] == 0
    assert items["largest_mom_drop_12m"] == 0.0
    assert items["operating_inflow_cv_6m"] == 0.0
    assert items["min_to_mean_operating_inflow_6m"] == 1.0
    assert items["operating_inflow_slope_6m_fen"] == 0
    assert items["history_months"] == 13  # January 2025 to the pull's month
    # the whole quarter, with nothing more booked, does raise them
    whole = _items(history, "2026Q1", None)
    assert whole["longest_no_operating_inflow_days"] == 87  # 4 January to 31 March
    # one payment against 2025Q4's six (the retired drop flag's "below half")
    assert whole["operating_inflow_qoq_growth"] == (500_000 - 2_700_000) / 2_700_000
    assert whole["lost_customers"] == 1
    assert whole["zero_operating_inflow_months_12m"] == 2
    assert whole["largest_mom_drop_12m"] == 1.0
    assert whole["history_months"] == 15


def test_on_its_last_day_a_quarter_is_still_partial() -> None:
    """Every day has begun, but the quarter is not over (the response says partial): its
    windows end with the month before, and no customer is lost yet; the reference agrees."""
    firm, log = _steady_firm()
    history = _histories(log)[firm]
    last_day = datetime(2026, 3, 31, 12, 0, tzinfo=CST)
    items = _items(history, "2026Q1", _us(last_day))
    assert _period("2026Q1").is_partial(_us(last_day))
    assert items["lost_customers"] is None
    assert items["history_months"] == 15  # January 2025 to March 2026
    assert items["ttm_operating_inflow_fen"] == 10 * 900_000 + 500_000 + 100_000  # to February
    assert items["negative_balance_days"] == 50  # 10 February to 31 March
    assert reference.products(log, as_of=last_day)[firm]["2026Q1"] == items


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=transaction_log(), late=st.integers(0, 3 * DAY_US - 1))
def test_a_period_that_is_over_gives_what_it_gave_without_a_clock(
    log: list[dict[str, Any]], late: int
) -> None:
    """Pulled any time after it ends, a period reads as it did before the pull's clock
    reached the kernels (every day counts)."""
    for history in _histories(log).values():
        for month in history.months:
            quarter = month - month % 3
            for label in (
                f"{month // 12:04d}-{month % 12 + 1:02d}",
                f"{quarter // 12}Q{quarter % 12 // 3 + 1}",
            ):
                pull = month_end_us(_period(label).last_month) + 1 + late
                assert _items(history, label, pull) == _items(history, label, None), label


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=transaction_log(), day=st.integers(0, 485), hour=st.integers(0, 23))
def test_partial_periods_agree_with_the_reference(
    log: list[dict[str, Any]], day: int, hour: int
) -> None:
    """Pulled at any hour of the generated logs' span (bookings after the pull included, as
    the contract allows a day ahead), every item of every period equals the reference's."""
    as_of = datetime(2024, 11, 1, tzinfo=CST) + timedelta(days=day, hours=hour)
    expected = reference.products(log, as_of=as_of)
    histories = _histories(log)
    served = {
        enterprise: {label: _items(histories[enterprise], label, _us(as_of)) for label in periods}
        for enterprise, periods in expected.items()
    }
    problems = differences(expected, served)
    assert not problems, "\n".join(problems[:10])


def test_a_partial_periods_rendering_is_kept_for_its_day_only() -> None:
    """The API caches renderings by period and, while the period is not over, by the
    number of its days begun at the pull (the items change each day, not only with events)."""
    february = _period("2026-02")
    noon = _us(datetime(2026, 2, 14, 12, 0, tzinfo=CST))
    assert clock_day(february, noon) == clock_day(february, noon + 11 * 3600 * 10**6) == 14
    assert clock_day(february, noon + 12 * 3600 * 10**6) == 15  # midnight in China
    assert clock_day(february, _us(datetime(2026, 3, 1, tzinfo=CST))) is None


class _Views:
    """The part of state.views.ViewStore the product service reads: one enterprise."""

    def __init__(self, fields: dict[bytes, bytes]) -> None:
        self._fields = fields

    async def progress_raw(self, partition: int) -> bytes:
        return b'{"partition":%d}' % partition

    async def fields(self, enterprise_id: str) -> dict[bytes, bytes]:
        return self._fields

    async def read(self, enterprise_id: str, partition: int) -> tuple[bytes, dict[bytes, bytes]]:
        return await self.progress_raw(partition), self._fields


class _Listener:
    async def barrier(self) -> bool:
        return True


def test_the_api_serves_a_partial_period_as_of_each_pulls_day() -> None:
    """A rendering the API keeps (no event since) is not served on the next day: the
    overdrawn days of February grow with the days, without a new event."""
    firm, log = _steady_firm()
    ledger = PartitionLedger(MemoryStore(), Pseudonymizer(b"test-key"), lambda: _REGISTRY)
    for offset, element in enumerate(log):
        txn = validate(element, element["bank"])
        assert isinstance(txn, Txn)
        ledger.apply(txn, Source(f"bank.{element['bank']}.txns", 0, offset, None))
    ledger.commit(len(log))
    months = dict(ledger.enterprises())[firm]
    fields = {
        f"m:{m // 12:04d}-{m % 12 + 1:02d}".encode(): codec.dumps(a.view())
        for m, a in months.items()
    }
    cache = ProductCache(16, "cf")
    cache.set_live(True)
    metrics = ApiMetrics(CollectorRegistry())
    service = ProductService(
        4,
        cast(ViewStore, _Views(fields)),
        cast(QueryIndex, None),  # the monthly summary has no subject segment
        _SPECS,
        cache,
        cast(InvalidationListener, _Listener()),
        metrics,
    )

    def overdrawn(moment: datetime) -> int:
        body = codec.loads(
            asyncio.run(service.body("monthly", firm, _period("2026-02"), _us(moment)))
        )
        assert body["partial"] == (moment < datetime(2026, 3, 1, tzinfo=CST))
        balances = next(s for s in body["segments"] if s["id"] == "balances")
        return int(balances["items"]["negative_balance_days"])

    assert overdrawn(datetime(2026, 2, 14, 12, 0, tzinfo=CST)) == 5
    assert overdrawn(datetime(2026, 2, 14, 23, 0, tzinfo=CST)) == 5  # kept: the same day
    assert len(cache) == 1
    assert overdrawn(datetime(2026, 2, 15, 9, 0, tzinfo=CST)) == 6
    assert overdrawn(datetime(2026, 3, 2, 9, 0, tzinfo=CST)) == 19  # over: every day
