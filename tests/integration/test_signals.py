"""Credit signals against the live stack: judged by the worker as events commit, published on
credit.signals, delivered only to institutions monitoring the enterprise, each delivery
recorded, by polling and as server-sent events, and stopped by a revocation.

The expected signals come from the naive reference (tests/reference/signals.py) over the
events published, judged as of today (China time), and their ids from the definition in
docs/signals.md written out here: sha256("<enterprise>|<rule>|<start day>"), 32 hex digits.
"""

from __future__ import annotations

import hashlib
import http.client
import re
import shutil
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from engine import codec
from engine.access.model import Purpose
from engine.periods import CST
from engine.runtime.observe import total
from engine.runtime.provision import Lender, authorize, provision_lender, revoke
from engine.runtime.runner import EmbeddedStack, embedded_stack
from engine.signals.spec import load_signals
from tests.factories import enterprise_ids
from tests.integration.conftest import (
    BANKS,
    get,
    module_settings,
    product_items,
    publish_by_bank,
    reader,
    wait_signals_judged,
)
from tests.reference import signals as reference
from tests.reference.events import transactions

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

OVERDRAWN, STOPPED, UNMONITORED = enterprise_ids(3, seed=1616)
CUSTOMER = "91110000600037341L"  # a credit code: TRADE, an operating inflow
SUPPLIER = "91310000MA1FL5LX3X"
SPEC = load_signals()


def _event(enterprise: str, n: int, when: datetime, direction: str, amount: int, balance: int):
    return {
        "schema": 1,
        "txn_id": f"S{enterprise[-8:]}{n:05d}",  # unique per bank
        "bank": BANKS[0],
        "enterprise_id": enterprise,
        "account": "6222000011119999",
        "booked_at": when.isoformat(),
        "direction": direction,
        "amount_fen": amount,
        "currency": "CNY",
        "balance_after_fen": balance,
        "channel": "transfer",
        "counterparty": {"id": CUSTOMER if direction == "in" else SUPPLIER, "bank": None},
    }


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=CST)


def _history(enterprise: str, today: date, stop_days_ago: int | None) -> list[dict[str, Any]]:
    """Daily receipts from sixty days ago, stopping ``stop_days_ago`` days ago; without it,
    they stop five days ago and an outflow four days ago overdraws the account (three days
    overdrawn raise a signal)."""
    events, balance = [], 500_000
    for k in range(60, 0, -1):
        if k < (stop_days_ago or 5):
            continue
        balance += 100_000
        events.append(
            _event(enterprise, len(events), _at(today - timedelta(days=k)), "in", 100_000, balance)
        )
    if stop_days_ago is None:
        amount = balance + 25_000
        events.append(
            _event(
                enterprise, len(events), _at(today - timedelta(days=4), 15), "out", amount, -25_000
            )
        )
    return events


def _episode_id(enterprise: str, rule: str, start: str) -> str:
    return hashlib.sha256(f"{enterprise}|{rule}|{start}".encode()).hexdigest()[:32]


def _expected(events: list[dict[str, Any]], today: date) -> set[tuple[str, str, str]]:
    """(enterprise, rule, start) of every episode the reference finds open today."""
    found = set()
    for enterprise, txns in transactions(events).items():
        for rule in SPEC.rules.values():
            if rule.evaluated:
                hit = reference.finding(rule.id, txns, today, rule.values())
                if hit is not None:
                    found.add((enterprise, rule.id, hit[0].isoformat()))
    return found


@pytest.fixture(scope="module")
def stack(registry_file: Path) -> Iterator[EmbeddedStack]:
    settings = module_settings(
        "signals", log_level="info", registry_path=registry_file, registry_refresh_seconds=0.3
    )
    with embedded_stack(settings, banks=BANKS) as running:
        yield running


class Feed:
    def __init__(self, stack: EmbeddedStack, lender: Lender) -> None:
        self.stack = stack
        self.lender = lender

    def poll(self, since: str | None = None) -> tuple[int, Any]:
        query = "" if since is None else "?" + urllib.parse.urlencode({"since": since})
        return get(self.stack.api_url + "/v1/signals" + query, self.lender.headers)

    def all(self) -> list[dict[str, Any]]:
        status, body = self.poll()
        assert status == 200, body
        return list(body["signals"])

    def wait(self, predicate: Any, timeout: float = 90.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            signals = self.all()
            if predicate(signals) or time.monotonic() > deadline:
                return signals
            time.sleep(0.5)


@pytest.fixture(scope="module")
def world(stack: EmbeddedStack) -> dict[str, Any]:
    today = datetime.now(CST).date()
    events = [
        *_history(OVERDRAWN, today, None),
        *_history(STOPPED, today, 40),
        *_history(UNMONITORED, today, None),
    ]
    monitor = provision_lender(stack.settings, "MONI0001")
    authorize(stack.settings, monitor, [OVERDRAWN, STOPPED], Purpose.POST_LOAN_MONITORING)
    authorize(stack.settings, monitor, [UNMONITORED])  # a loan application: no signals
    bystander = provision_lender(stack.settings, "BYST0002")
    publish_by_bank(stack, [e for e in events if e["enterprise_id"] != STOPPED])
    # The stopped firm's history arrives as a bank's backfill would, a few days of bookings
    # at a time: judged as of today after each, it would look stopped since an earlier day
    # and raise episodes only to retract them. The worker waits until it stops arriving.
    stopped = [e for e in events if e["enterprise_id"] == STOPPED]
    Feed(stack, monitor).wait(lambda got: any(s["enterprise_id"] == OVERDRAWN for s in got))
    for start in range(0, len(stopped), 7):  # the worker is judging: it has raised one
        publish_by_bank(stack, stopped[start : start + 7])
        time.sleep(0.6)
    return {"today": today, "events": events, "monitor": monitor, "bystander": bystander}


def _raised(signals: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(s["enterprise_id"], s["rule"], s["date"]) for s in signals if s["state"] == "raised"}


def test_the_monitoring_institution_receives_exactly_the_reference_signals(
    stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    expected = {
        found
        for found in _expected(world["events"], world["today"])
        if found[0] in (OVERDRAWN, STOPPED)
    }
    assert {rule for _, rule, _ in expected} >= {"account_overdrawn", "operating_inflow_stopped"}
    feed = Feed(stack, world["monitor"])
    signals = feed.wait(lambda got: _raised(got) >= expected)
    assert _raised(signals) == expected
    assert [s for s in signals if s["state"] != "raised"] == []  # the backfill raised nothing
    for s in signals:
        assert s["id"] == _episode_id(s["enterprise_id"], s["rule"], s["date"])
        assert s["severity"] == SPEC.rules[s["rule"]].severity.value
        assert s["as_of"] == world["today"].isoformat()
        assert s["raised_at"] == f"{s['date']}T00:00:00+08:00"
        assert list(s["evidence"]) == list(SPEC.rules[s["rule"]].evidence)
    stopped = next(s for s in signals if s["rule"] == "operating_inflow_stopped")
    last = world["today"] - timedelta(days=40)
    assert stopped["evidence"] == {
        "last_operating_inflow_on": last.isoformat(),
        "days_without": 40,
        "days_required": 30,  # paid every day: its longest gap does not lengthen the wait
    }
    # Oldest first, and a cursor that resumes after them: nothing again.
    status, body = feed.poll(feed.poll()[1]["next"])
    assert status == 200 and body["signals"] == []


def test_no_one_else_receives_them(stack: EmbeddedStack, world: dict[str, Any]) -> None:
    Feed(stack, world["monitor"]).wait(lambda got: len(got) >= 2)
    assert Feed(stack, world["bystander"]).all() == []
    assert all(s["enterprise_id"] != UNMONITORED for s in Feed(stack, world["monitor"]).all())
    # Nor are they fed to it: the feed stage checks the purpose too, not only the API.
    redis = Redis.from_url(stack.settings.redis_url.get_secret_value())
    try:
        for code in (world["monitor"].code, world["bystander"].code):
            key = f"{stack.settings.redis_prefix}:signals:v1:feed:{{{code}}}"
            fed = [codec.loads(fields[b"s"]) for _, fields in redis.xrange(key)]
            assert all(s["enterprise_id"] in (OVERDRAWN, STOPPED) for s in fed)
            assert bool(fed) == (code == world["monitor"].code)
    finally:
        redis.close()
    assert get(stack.api_url + "/v1/signals")[0] == 401
    assert get(stack.api_url + "/v1/signals?since=yesterday", world["monitor"].headers)[0] == 400


def test_each_delivery_is_recorded_like_a_query(
    stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    monitor = world["monitor"]
    Feed(stack, monitor).wait(lambda got: len(got) >= 2)
    deadline = time.monotonic() + 30
    while True:
        status, body = get(
            f"{stack.api_url}/v1/institutions/{monitor.code}/queries", monitor.headers
        )
        assert status == 200
        records = [q for q in body["queries"] if q["product"] == "signals"]
        if {q["enterprise_id"] for q in records} >= {
            OVERDRAWN,
            STOPPED,
        } or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {q["enterprise_id"] for q in records} == {OVERDRAWN, STOPPED}
    assert {q["purpose"] for q in records} == {"post_loan_monitoring"}
    assert {q["authorization_id"] for q in records} == {
        monitor.authorizations[OVERDRAWN],
        monitor.authorizations[STOPPED],
    }
    # Recorded, not counted: the credit report's query items read the answered index, and a
    # lender monitoring its borrower is not a lender considering credit.
    redis = Redis.from_url(stack.settings.redis_url.get_secret_value())
    try:
        for enterprise in (OVERDRAWN, STOPPED):
            key = f"{stack.settings.redis_prefix}:queries:v1:answered:{{{enterprise}}}"
            assert [r for r in redis.zrange(key, 0, -1) if b'"signals"' in r] == []
    finally:
        redis.close()


def test_an_institution_granted_monitoring_later_is_given_the_open_episodes(
    stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    monitor = world["monitor"]
    # Everything the monitor was given so far is open (nothing has cleared yet).
    open_now = Feed(stack, monitor).wait(lambda got: len(got) >= 2)
    assert {s["state"] for s in open_now} == {"raised"}
    late = provision_lender(stack.settings, "LATE0003")
    assert Feed(stack, late).all() == []
    authorize(stack.settings, late, [OVERDRAWN, STOPPED], Purpose.POST_LOAN_MONITORING)
    # Given at the grant, with no new event of either firm to carry them.
    given = Feed(stack, late).wait(lambda got: len(got) >= len(open_now), 30)
    assert sorted(s["id"] for s in given) == sorted(s["id"] for s in open_now)
    assert {s["state"] for s in given} == {"raised"}
    # A grant applied again (the access stage answers it once) gives nothing twice.
    assert len(_fed(stack, late.code)) == len(open_now)


# -- the quarterly report's signal items: the days each episode covered --------------------


def _quarter(day: date) -> tuple[str, date]:
    """The label and the first day of ``day``'s quarter."""
    first = date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    return f"{day.year}Q{(day.month - 1) // 3 + 1}", first


def _signal_days(stack: EmbeddedStack, enterprise: str, label: str) -> dict[str, int] | None:
    items = product_items(stack, enterprise, label)
    if items is None:
        return None
    return {
        rule: items[f"signal_{rule}_days"]
        for rule in SPEC.rules
        if SPEC.rules[rule].evaluated and items[f"signal_{rule}_days"]
    }


def _covered_days(stack: EmbeddedStack, world: dict[str, Any]) -> dict[str, dict[str, int]]:
    """What the report of today's quarter must show: each episode the reference finds open
    today (or that the monitor was told has cleared today), from its start (or the quarter's
    first day) to today, or to the day before it closed."""
    today = world["today"]
    _, first = _quarter(today)
    cleared = {
        (s["enterprise_id"], s["rule"])
        for s in Feed(stack, world["monitor"]).all()
        if s["state"] == "cleared"
    }
    expected: dict[str, dict[str, int]] = {OVERDRAWN: {}, STOPPED: {}}
    for enterprise, rule, start in _expected(world["events"], today):
        if enterprise in expected:
            # a receipt today ended it (test_a_stream_resumes...): today is not covered
            last = today - timedelta(days=1) if (enterprise, rule) in cleared else today
            days = (last - max(date.fromisoformat(start), first)).days + 1
            if days > 0:
                expected[enterprise][rule] = days
    return expected


def _assert_signal_days(stack: EmbeddedStack, world: dict[str, Any]) -> None:
    label, _ = _quarter(world["today"])
    reader(stack, [OVERDRAWN, STOPPED])
    deadline = time.monotonic() + 30
    while True:
        expected = _covered_days(stack, world)
        served = {e: _signal_days(stack, e, label) for e in (OVERDRAWN, STOPPED)}
        if served == expected or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert served == expected
    assert expected[OVERDRAWN] or expected[STOPPED]  # not a quarter that began today


def test_a_quarterly_report_shows_the_days_each_episode_covered(
    stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    Feed(stack, world["monitor"]).wait(lambda got: len(got) >= 2)
    _assert_signal_days(stack, world)


def _read_events(
    response: http.client.HTTPResponse, done: Callable[[list[dict[str, Any]]], bool], timeout: float
) -> list[dict[str, Any]]:
    """Server-sent events (id, event, data) until ``done`` says so or the time is up (the
    stream's pings every 15 s keep the read from blocking past it for long)."""
    found: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while not done(found) and time.monotonic() < deadline:
        line = response.readline().decode().rstrip("\r\n")
        if not line:
            if "data" in current:
                found.append(current)
            current = {}
            continue
        field, _, value = line.partition(":")
        current[field] = value.lstrip(" ")
    return found


def test_a_stream_resumes_and_carries_the_episode_to_its_end(
    stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    monitor, today = world["monitor"], world["today"]
    before = Feed(stack, monitor).wait(lambda got: len(got) >= 2)
    overdrawn = next(s for s in before if s["rule"] == "account_overdrawn")
    url = urllib.parse.urlsplit(stack.api_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    # From the start of the feed: Last-Event-ID "0-0" resumes before the first signal.
    connection.request(
        "GET", "/v1/signals/stream", headers={**monitor.headers, "Last-Event-ID": "0-0"}
    )
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("content-type", "").startswith(
        "text/event-stream"
    )
    replayed = _read_events(response, lambda got: len(got) >= len(before), 30)
    assert [codec.loads(e["data"])["id"] for e in replayed] == [s["id"] for s in before]
    assert all(e["event"] == "signal" for e in replayed)
    # A receipt today that brings the account back above zero: the episode is cleared (it
    # held on its first day), with the same id, on the open stream.
    balance = 50_000
    publish_by_bank(
        stack,
        [_event(OVERDRAWN, 900, datetime.now(CST) - timedelta(seconds=5), "in", 75_000, balance)],
    )

    def cleared_in(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [s for e in got if (s := codec.loads(e["data"]))["id"] == overdrawn["id"]]

    ended = _read_events(response, lambda got: bool(cleared_in(got)), 60)
    cleared = cleared_in(ended)
    connection.close()
    assert [s["state"] for s in cleared] == ["cleared"], ended
    assert cleared[0]["as_of"] == today.isoformat()


def test_the_report_follows_an_episode_that_closed(
    stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    # Run after the stream's test has cleared the overdraft: the report pulled before (and
    # kept by the API's cache) is rendered again once the episode's close reaches the views.
    _assert_signal_days(stack, world)


def test_open_streams_hold_no_redis_connection_while_they_wait(
    stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    # A waiting stream is woken by Redis's announcement of its feed's writes
    # (state/signal_feeds.py FeedWakeups), not blocked in XREAD on a connection of its own:
    # thirty idle streams must not take thirty connections.
    monitor = world["monitor"]
    Feed(stack, monitor).wait(lambda got: len(got) >= 2)
    redis = Redis.from_url(stack.settings.redis_url.get_secret_value())
    url = urllib.parse.urlsplit(stack.api_url)
    streams = []
    try:
        before = len(redis.client_list())
        for _ in range(30):
            connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            connection.request("GET", "/v1/signals/stream", headers=monitor.headers)
            assert connection.getresponse().status == 200
            streams.append(connection)
        time.sleep(1.0)  # every stream is waiting now
        during = len(redis.client_list())
        assert during - before < 10, (before, during)
    finally:
        for connection in streams:
            connection.close()
        redis.close()


def test_a_revocation_stops_delivery_at_once(stack: EmbeddedStack, world: dict[str, Any]) -> None:
    monitor = world["monitor"]
    Feed(stack, monitor).wait(lambda got: len(got) >= 2)
    feed = Feed(stack, monitor)
    assert any(s["enterprise_id"] == STOPPED for s in feed.all())
    revoke(stack.settings, monitor, STOPPED)  # returns once the access stage applied it
    # The API drops the authorization it kept when Redis announces the change (well under
    # a second); the signals already in the feed are withheld from then on.
    signals = feed.wait(lambda got: all(s["enterprise_id"] != STOPPED for s in got), 5)
    assert signals and all(s["enterprise_id"] != STOPPED for s in signals)


def _fed(stack: EmbeddedStack, code: str) -> list[tuple[str, str]]:
    """(id, state) of every entry in an institution's feed, in order."""
    redis = Redis.from_url(stack.settings.redis_url.get_secret_value())
    try:
        key = f"{stack.settings.redis_prefix}:signals:v1:feed:{{{code}}}"
        return [
            ((s := codec.loads(fields[b"s"]))["id"], s["state"]) for _, fields in redis.xrange(key)
        ]
    finally:
        redis.close()


def test_a_crash_and_a_rebuild_of_lost_state_repeat_nothing(
    stack: EmbeddedStack, world: dict[str, Any]
) -> None:
    monitor = world["monitor"]
    Feed(stack, monitor).wait(lambda got: len(got) >= 2)
    before = _fed(stack, monitor.code)
    assert len(before) == len(set(before))
    stack.worker.kill()  # SIGKILL: what was published and not stored comes again
    shutil.rmtree(stack.settings.data_dir / "state")  # and the state is rebuilt from the log
    stack.restart_worker()

    # The rebuilt partitions restore their episodes from the changelog before they judge
    # their enterprises again (agents/signal_restore.py): the open ones go on, so nothing is
    # published again. (Before the changelog they were published again with the same ids,
    # and the feed dropped the repeats.)
    deadline = time.monotonic() + 60
    while total(stack.worker_url, "creditflow_signal_evaluations_total") == 0:
        assert time.monotonic() < deadline, "the rebuilt worker judged nothing"
        time.sleep(0.2)
    wait_signals_judged(stack)
    assert total(stack.worker_url, "creditflow_signals_total") == 0
    assert _fed(stack, monitor.code) == before


def test_reloading_the_registries_repeats_nothing(
    stack: EmbeddedStack, world: dict[str, Any], registry_file: Path
) -> None:
    """A new registry version classifies the events that come after it: the enterprises
    judged before are not judged again for it, and no subscriber hears anything."""
    monitor = world["monitor"]
    Feed(stack, monitor).wait(lambda got: len(got) >= 2)
    before = _fed(stack, monitor.code)
    published = total(stack.worker_url, "creditflow_signals_total")
    version = total(stack.worker_url, "creditflow_registry_version")
    text = re.sub(
        r"^version = (\d+)",
        lambda m: f"version = {int(m[1]) + 1}",
        registry_file.read_text(),
        count=1,
        flags=re.MULTILINE,
    )
    registry_file.write_text(text + '\n[[entries]]\nid = "PSP-NEW-0001"\nclass = "PSP"\n')
    deadline = time.monotonic() + 30
    while total(stack.worker_url, "creditflow_registry_version") != version + 1:
        assert time.monotonic() < deadline, "the worker did not load the new registry"
        time.sleep(0.2)
    time.sleep(3)  # judging after a commit waits 0.3 s to 5 s: long enough for any to show
    assert total(stack.worker_url, "creditflow_signals_total") == published
    assert _fed(stack, monitor.code) == before
