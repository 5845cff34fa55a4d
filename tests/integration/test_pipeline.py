"""Events through the real broker, worker and API, compared with the reference."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import Producer
from kafka import KafkaProducer
from redis.asyncio import Redis

from engine import codec
from engine.events.contract import RejectReason
from engine.events.publisher import BankPublisher
from engine.events.rejects import read_rejects
from engine.events.topics import bank_topic
from engine.runtime.observe import wait_views_published, worker_samples
from engine.runtime.runner import EmbeddedStack
from loadtest.generator import GeneratorConfig, generate
from state.views import ViewStore, month_field
from tests import reference
from tests.factories import enterprise_ids, event
from tests.integration.conftest import (
    BANKS,
    PARTITIONS,
    assert_products,
    get,
    operator,
    pull,
    reader,
)

pytestmark = pytest.mark.integration

TWO_BANKS, SOLO = enterprise_ids(2, seed=99)


def _edge_cases() -> list[dict[str, Any]]:
    """Hand-made cases the generator may not hit."""
    a, b = BANKS

    def ev(txn_id: str, bank: str, **fields: Any) -> dict[str, Any]:
        return event(txn_id=txn_id, bank=bank, enterprise_id=TWO_BANKS, **fields)

    return [
        # One enterprise at two banks: both accounts count in one profile.
        ev("E-A1", a, account="A-1", booked_at="2026-01-10T09:00:00+08:00", balance_after_fen=500),
        ev(
            "E-B1",
            b,
            account="B-1",
            booked_at="2026-01-11T09:00:00+08:00",
            balance_after_fen=700,
            direction="out",
            amount_fen=300,
            counterparty={"id": "CP-X"},
        ),
        # UTC times either side of the China month boundary (Feb 1 00:00 CST = Jan 31 16:00Z).
        ev("E-A2", a, account="A-1", booked_at="2026-01-31T15:59:59Z", balance_after_fen=900),
        ev("E-A3", a, account="A-1", booked_at="2026-01-31T16:00:00Z", balance_after_fen=1100),
        # Ties on booked_at: txn_id order decides the balance (E-B3 after E-B2).
        ev("E-B3", b, account="B-1", booked_at="2026-02-20T12:00:00+08:00", balance_after_fen=1),
        ev("E-B2", b, account="B-1", booked_at="2026-02-20T12:00:00+08:00", balance_after_fen=2),
        # A reversal of the last booking of a month: the balance falls back to the one before.
        ev("E-A4", a, account="A-1", booked_at="2026-02-25T10:00:00+08:00", balance_after_fen=5),
        ev(
            "E-A4-R",
            a,
            account="A-1",
            booked_at="2026-02-25T10:05:00+08:00",
            balance_after_fen=1100,
            direction="out",
            reversal_of="E-A4",
        ),
        # A self transfer does not add a counterparty.
        ev(
            "E-A5",
            a,
            account="A-1",
            booked_at="2026-03-02T10:00:00+08:00",
            counterparty={"id": TWO_BANKS},
        ),
    ]


def _reversal_first() -> list[dict[str, Any]]:
    original = event(
        txn_id="S-1", bank=BANKS[0], enterprise_id=SOLO, booked_at="2026-02-03T10:00:00+08:00"
    )
    reversal = dict(
        original,
        txn_id="S-1-R",
        direction="out",
        reversal_of="S-1",
        booked_at="2026-02-03T10:10:00+08:00",
    )
    keep = event(
        txn_id="S-2", bank=BANKS[0], enterprise_id=SOLO, booked_at="2026-02-04T10:00:00+08:00"
    )
    return [reversal, original, keep]


def _months_late() -> list[dict[str, Any]]:
    return [
        event(
            txn_id="L-1",
            bank=BANKS[1],
            enterprise_id=SOLO,
            booked_at="2025-12-15T10:00:00+08:00",
            balance_after_fen=42,
        )
    ]


def _generated() -> list[dict[str, Any]]:
    config = GeneratorConfig(
        seed=5,
        enterprises=25,
        months=4,
        end_month=2026 * 12 + 2,
        banks=BANKS,
        reversal_rate=0.05,
        late_rate=0.05,
        duplicate_rate=0.03,
        now=datetime(2026, 4, 15, tzinfo=UTC),
    )
    return list(generate(config))


def _publish_mixed(stack: EmbeddedStack, events: list[dict[str, Any]]) -> None:
    """Four ways a bank may publish: our batches, our single events, librdkafka's own
    partitioner (CRC32, so many land on the 'wrong' partition), and kafka-python."""
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    ours = {bank: BankPublisher(bootstrap, bank, PARTITIONS, max_batch=50) for bank in BANKS}
    crc32 = Producer({"bootstrap.servers": bootstrap})
    outside = KafkaProducer(bootstrap_servers=bootstrap)
    batches: dict[str, list[dict[str, Any]]] = {bank: [] for bank in BANKS}
    for index, element in enumerate(events):
        bank, key = element["bank"], element["enterprise_id"].encode()
        way = index % 6
        if way in (0, 1, 2):
            batches[bank].append(element)
        elif way == 3:
            ours[bank].publish(element)
        elif way == 4:
            crc32.produce(bank_topic(bank), codec.dumps(element), key)
        else:
            outside.send(bank_topic(bank), codec.dumps(element), key=key)
    for bank, group in batches.items():
        ours[bank].publish_batch(group)
    for publisher in ours.values():
        publisher.flush()
    assert crc32.flush(30) == 0
    outside.flush(30)
    outside.close()


def _publish_in_order(stack: EmbeddedStack, events: list[dict[str, Any]]) -> None:
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    for element in events:
        publisher = BankPublisher(bootstrap, element["bank"], PARTITIONS)
        publisher.publish(element)
        publisher.flush()


def test_products_equal_the_reference(stack: EmbeddedStack) -> None:
    first = _reversal_first()
    _publish_in_order(stack, first)  # the reversal arrives before its original
    phase1 = _generated() + _edge_cases()
    _publish_mixed(stack, phase1)
    late = _months_late()
    time.sleep(1)
    _publish_in_order(stack, late)  # booked in December, published after March
    log = first + phase1 + late
    expected = reference.products(log)
    # The reference itself, on the hand-made cases: month boundary in UTC, ties, reversal.
    closing = {
        label: expected[TWO_BANKS][label]["closing_balance_fen"]
        for label in ("2026-01", "2026-02", "2026Q1")
    }
    assert closing == {"2026-01": 900 + 700, "2026-02": 1100 + 1, "2026Q1": 1_000_000 + 1}
    assert len(expected) >= 25
    assert_products(stack, expected)

    # Order-sensitive events come last, one at a time: a conflicting duplicate and bad
    # reversals are rejected and change nothing.
    original = next(e for e in phase1 if "reversal_of" not in e and e["enterprise_id"] != SOLO)
    phase2 = [
        dict(original, amount_fen=original["amount_fen"] + 1),  # conflicting duplicate
        event(
            txn_id="E-A4-RR",
            bank=BANKS[0],
            enterprise_id=TWO_BANKS,
            booked_at="2026-02-26T10:00:00+08:00",
            reversal_of="E-A4-R",
        ),  # reverses a reversal
        event(
            txn_id="E-A4-R2",
            bank=BANKS[0],
            enterprise_id=TWO_BANKS,
            booked_at="2026-02-26T10:00:00+08:00",
            reversal_of="E-A4",
        ),  # second reversal
    ]
    _publish_in_order(stack, phase2)
    assert reference.products(log + phase2) == expected
    wait_for_rejects(stack, {"conflicting_duplicate": 1, "bad_reversal": 2}, topic_bank=None)
    # "Nothing changed" means something only once the step that could have changed it is
    # published: the ledger sends its rejections before it commits and publishes the step.
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    wait_views_published(stack.worker_url, bootstrap, PARTITIONS)
    assert_products(stack, expected, timeout=5)

    status, body = pull(stack, TWO_BANKS, "2026Q1")
    assert status == 200 and body["partial"] is False
    offsets = body["as_of"]["source_offsets"]
    assert set(offsets) == {bank_topic(b) for b in BANKS}
    assert body["as_of"]["watermark"].endswith("+08:00")


def wait_for_rejects(
    stack: EmbeddedStack, want: dict[str, int], topic_bank: str | None, timeout: float = 30.0
) -> list[dict[str, Any]]:
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    deadline = time.monotonic() + timeout
    while True:
        records = [
            r
            for r in read_rejects(bootstrap)
            if topic_bank is None or r["source"]["topic"] == bank_topic(topic_bank)
        ]
        # Delivery is at least once: a step redelivered after a crash rejects its events
        # again. An event is rejected once per place it was published at.
        counts: dict[str, int] = {}
        seen = set()
        for record in records:
            where = tuple(sorted(record["source"].items()))
            if (record["reason"], where) not in seen:
                seen.add((record["reason"], where))
                counts[record["reason"]] = counts.get(record["reason"], 0) + 1
        if all(counts.get(k, 0) >= v for k, v in want.items()) or time.monotonic() > deadline:
            assert {k: counts.get(k, 0) for k in want} == want, [
                (r["reason"], r["detail"], r["original"][:120]) for r in records
            ]
            return records
        time.sleep(0.5)


def test_a_new_bank_is_picked_up_and_every_bad_input_is_rejected_with_its_reason(
    stack: EmbeddedStack,
) -> None:
    code = "REJECT01"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine.cli", *args],
            env=stack.env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def bank_add() -> subprocess.CompletedProcess[str]:
        return cli("bank", "add", code)

    registered, again = bank_add(), bank_add()
    assert registered.returncode == 0 and "created" in registered.stdout
    assert again.returncode == 0 and "already registered" in again.stdout
    listed = cli("bank", "list")
    assert listed.returncode == 0 and code in listed.stdout.split()
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    who = enterprise_ids(1, seed=123)[0]

    def ev(**fields: Any) -> dict[str, Any]:
        return event(**{"bank": code, "enterprise_id": who, **fields})

    good = ev(txn_id="G-1", booked_at="2026-03-01T10:00:00+08:00")
    bad_elements = {
        "missing_field": {k: v for k, v in ev(txn_id="M").items() if k != "account"},
        "unsupported_schema": ev(txn_id="U", schema=2),
        "bad_value": ev(txn_id="V", direction="sideways"),
        "bad_timestamp": ev(txn_id="TS", booked_at="2026-03-01"),
        "bad_enterprise_id": ev(txn_id="E", enterprise_id="91350100M000100Y44"),
        "bank_mismatch": ev(txn_id="BM", bank=BANKS[0]),
        "bad_amount": ev(txn_id="AM", amount_fen=0),
        "too_old": ev(txn_id="OLD", booked_at="2001-01-01T00:00:00Z"),
        "bad_type": "not an object",
    }
    raw_messages = {"malformed_json": b"{oops", "empty_batch": b"[]"}
    producer = Producer({"bootstrap.servers": bootstrap})
    topic = bank_topic(code)
    # The worker re-reads the topic list every second: wait until it consumes the new topic.
    producer.produce(topic, codec.dumps(good), who.encode())
    producer.produce(
        topic,
        codec.dumps(
            [ev(txn_id="G-2", booked_at="2026-03-02T10:00:00+08:00"), *bad_elements.values()]
        ),
        who.encode(),
    )
    for raw in raw_messages.values():
        producer.produce(topic, raw, who.encode())
    producer.produce(topic, codec.dumps(ev(txn_id="G-1", amount_fen=1)), who.encode())  # conflict
    producer.produce(topic, codec.dumps(ev(txn_id="R-R", reversal_of="R-1")), who.encode())
    producer.produce(topic, codec.dumps(ev(txn_id="R-R2", reversal_of="R-1")), who.encode())
    assert producer.flush(30) == 0

    want = {reason: 1 for reason in (*bad_elements, *raw_messages)}
    want |= {"conflicting_duplicate": 1, "bad_reversal": 1}
    # apply_failed needs a bug in the ledger: tests/faults/test_poisoned_row.py plants one.
    assert set(want) == {r.value for r in RejectReason} - {"apply_failed"}
    records = wait_for_rejects(stack, want, topic_bank=code, timeout=60)
    ledger_reasons = {"conflicting_duplicate", "bad_reversal"}  # need the enterprise's state
    for record in records:
        assert record["source"]["topic"] == topic and record["detail"]
        assert isinstance(record["source"]["offset"], int)
        assert record["stage"] == ("ledger" if record["reason"] in ledger_reasons else "intake")
        assert record["original_encoding"] == "utf-8"
        rejected_at = datetime.fromisoformat(record["rejected_at"])
        assert rejected_at.tzinfo is not None
        assert abs((datetime.now(UTC) - rejected_at).total_seconds()) < 600
        if record["reason"] in bad_elements:
            assert record["source"]["index"] is not None  # which element of the batch
            assert codec.loads(record["original"]) == bad_elements[record["reason"]]
        else:  # a message of its own: no element to name
            assert record["source"]["index"] is None
        if record["reason"] in raw_messages:
            assert record["original"].encode() == raw_messages[record["reason"]]
    # The good events of the same messages were not lost.
    assert_products(stack, {who: {"2026-03": {"inflow_count": 2, "inflow_amount_fen": 2 * 12_345}}})
    rejected = worker_samples(stack.worker_url)["creditflow_rejected_events_total"]
    seen = {dict(labels)["reason"] for labels, value in rejected.items() if value > 0}
    assert seen == set(want)
    for labels, value in rejected.items():
        if value > 0:
            reason, stage = dict(labels)["reason"], dict(labels)["stage"]
            assert stage == ("ledger" if reason in ledger_reasons else "intake"), labels
    # The command line shows them by reason.
    shown = cli("rejects", "--reason", "bad_amount", "--limit", "50")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "bad_amount=" in lines[0] and "malformed_json=" in lines[0]  # counts of every reason
    listed_reasons = {line.split()[1] for line in lines if line.startswith("- ")}
    assert listed_reasons == {"bad_amount"}
    # An operator reads the same through the API; a lender does not.
    rejects_url = f"{stack.api_url}/v1/operations/rejects?limit=500"
    assert get(rejects_url)[0] == 401
    assert get(rejects_url, reader(stack).headers)[0] == 403
    status, body = get(rejects_url, operator(stack))
    assert status == 200 and set(want) <= set(body["by_reason"])
    mine = [r for r in body["rejects"] if r["source"]["topic"] == topic]
    assert sorted(r["reason"] for r in mine) == sorted(want)
    status, body = get(f"{rejects_url}&reason=bad_amount", operator(stack))
    assert status == 200 and {r["reason"] for r in body["rejects"]} == {"bad_amount"}
    assert get(f"{rejects_url}&reason=nonsense", operator(stack))[0] == 422
    # The enterprise whose rejected events were shown sees that read among its queries.
    token = codec.loads(cli("enterprise", "token", who).stdout.strip().splitlines()[-1])["token"]

    def read_by_operator() -> bool:
        queries = get(f"{stack.api_url}/v1/enterprises/{who}/queries", {
            "Authorization": f"Bearer {token}"
        })[1]["queries"]  # fmt: skip
        return any(q["by"] == "operator" and q["product"] == "rejects" for q in queries)

    deadline = time.monotonic() + 30
    while not read_by_operator():
        assert time.monotonic() < deadline, "the operator's read was not recorded"
        time.sleep(0.2)


def test_api_answers_errors_as_json(stack: EmbeddedStack) -> None:
    base = f"{stack.api_url}/v1/enterprises"
    headers = reader(stack).headers
    assert get(f"{base}/not-a-code/monthly/2026-01", headers)[0] == 400
    assert get(f"{base}/{SOLO}/monthly/2026-13", headers)[0] == 400
    assert get(f"{base}/{SOLO}/quarterly/2026-01", headers)[0] == 400
    status, body = pull(stack, enterprise_ids(1, seed=4242)[0], "2026-01")
    assert status == 404 and body["error"]["code"] == "not_found"
    # An enterprise of this test's own, with data from 2026-02 on: a period before its first
    # transaction is 404 (not an empty product), one after its last is served.
    known = enterprise_ids(1, seed=4343)[0]
    _publish_in_order(
        stack,
        [
            event(
                txn_id="K-1",
                bank=BANKS[0],
                enterprise_id=known,
                booked_at="2026-02-03T10:00:00+08:00",
            )
        ],
    )
    deadline = time.monotonic() + 60
    while pull(stack, known, "2026-02")[0] != 200:
        assert time.monotonic() < deadline, "the enterprise's product never showed"
        time.sleep(0.2)
    status, body = pull(stack, known, "2020-01")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = pull(stack, known, "2026-04")  # after its last transaction
    assert status == 200 and body["segments"][0]["items"]["inflow_count"] == 0
    assert get(f"{stack.api_url}/healthz")[0] == 200
    status, body = get(f"{stack.api_url}/readyz")
    assert status == 200 and body["ready"] and body["partitions_without_views"] == []
    assert get(f"{stack.api_url}/nope")[0] == 404
    assert get(f"{stack.api_url}/metrics")[0] == 401  # operators only
    assert get(f"{stack.api_url}/metrics", headers)[0] == 403  # a lender is no operator
    metrics = urllib.request.Request(f"{stack.api_url}/metrics", headers=operator(stack))
    with urllib.request.urlopen(metrics) as response:
        assert b'creditflow_api_requests_total{route="/v1/enterprises' in response.read()


def test_worker_and_api_time_their_garbage_collections(stack: EmbeddedStack) -> None:
    for url, headers in ((stack.worker_url, None), (stack.api_url, operator(stack))):
        counts = worker_samples(url, headers)["creditflow_gc_pause_seconds_count"]
        assert {dict(labels)["generation"] for labels in counts} == {"0", "1", "2"}


def _render_cache_hits(stack: EmbeddedStack) -> float:
    samples = worker_samples(stack.api_url, operator(stack))[
        "creditflow_api_render_cache_lookups_total"
    ]
    return sum(value for labels, value in samples.items() if dict(labels)["result"] == "hit")


def test_a_cached_product_follows_every_change_of_its_views(stack: EmbeddedStack) -> None:
    """Repeated pulls are served from the render cache, and never after the views changed."""
    who = enterprise_ids(1, seed=777)[0]
    bank = BANKS[0]
    publisher = BankPublisher(stack.settings.kafka_bootstrap or "", bank, PARTITIONS)

    def book(txn_id: str, amount: int) -> None:
        publisher.publish(
            event(
                txn_id=txn_id,
                bank=bank,
                enterprise_id=who,
                booked_at="2026-04-03T10:00:00+08:00",
                amount_fen=amount,
            )
        )
        publisher.flush(30)

    book("C-1", 100)
    assert_products(stack, {who: {"2026-04": {"inflow_count": 1, "inflow_amount_fen": 100}}})
    lender = reader(stack, [who])
    url = stack.api_url + lender.path(who, "monthly", "2026-04")
    before = _render_cache_hits(stack)
    first, second = get(url, lender.headers)[1], get(url, lender.headers)[1]
    assert _render_cache_hits(stack) > before  # the second pull was not rendered again
    assert first["segments"] == second["segments"]
    book("C-2", 250)  # the views change: the cached rendering must not be served any more
    assert_products(stack, {who: {"2026-04": {"inflow_count": 2, "inflow_amount_fen": 350}}})
    # Months dropped from the kept history disappear as soon as Redis has announced the
    # change to the API (well under a second), cached or not, and stay gone.
    asyncio.run(_drop_month(stack, who, "2026-04"))
    deadline = time.monotonic() + 1.0
    while get(url, lender.headers)[0] != 404 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [get(url, lender.headers)[0] for _ in range(3)] == [404, 404, 404]


async def _drop_month(stack: EmbeddedStack, enterprise_id: str, label: str) -> None:
    client = Redis.from_url(stack.settings.redis_url.get_secret_value())
    try:
        await ViewStore(client, stack.settings.redis_prefix).drop_months({enterprise_id: [label]})
    finally:
        await client.aclose()


def test_redis_holds_keyed_pseudonyms_never_a_counterparty_id_or_an_account_number(
    stack: EmbeddedStack,
) -> None:
    who = enterprise_ids(1, seed=4711)[0]
    bank = BANKS[0]
    supplier, customer = enterprise_ids(2, seed=4712)  # credit codes: TRADE counterparties
    accounts = ("6222020200112233445", "6222020200998877665")
    events = [
        event(
            txn_id=f"PRIV-{n}",
            bank=bank,
            enterprise_id=who,
            account=accounts[n % 2],
            booked_at=f"2026-03-{10 + n:02d}T10:00:00+08:00",
            direction="in" if n % 2 else "out",
            counterparty={"id": (customer, supplier)[n % 2 == 0], "name": "某某有限公司"},
        )
        for n in range(4)
    ]
    _publish_in_order(stack, events)
    expected = reference.products(events)
    assert_products(stack, {who: {"2026-03": expected[who]["2026-03"]}})

    # The keyed hash, written out here (BLAKE2b, 8 bytes, the deployment's key): a
    # pseudonymizer that kept raw ids, or hashed without the key, would not match it.
    key = stack.settings.pseudonym_key.get_secret_value().encode()[:64]

    def keyed(value: str) -> str:
        return hashlib.blake2b(value.encode(), digest_size=8, key=key).hexdigest()

    async def everything_in_redis() -> tuple[bytes, dict[str, Any]]:
        redis = Redis.from_url(stack.settings.redis_url.get_secret_value())
        try:
            dump = []
            async for name in redis.scan_iter(match=f"{stack.settings.redis_prefix}*", count=500):
                kind = (await redis.type(name)).decode()
                if kind == "string":
                    dump.append(await redis.get(name) or b"")
                elif kind == "hash":
                    for field, value in (await redis.hgetall(name)).items():
                        dump += [field, value]
                elif kind == "zset":
                    dump += await redis.zrange(name, 0, -1)
                elif kind in ("set", "list"):
                    members = await (
                        redis.smembers(name) if kind == "set" else redis.lrange(name, 0, -1)
                    )
                    dump += list(members)
                dump.append(name)
            fields = await ViewStore(redis, stack.settings.redis_prefix).fields(who)
            return b"\n".join(dump), codec.loads(fields[month_field("2026-03").encode()])
        finally:
            await redis.aclose()

    dump, month = asyncio.run(everything_in_redis())
    for raw in (supplier, customer, *accounts):
        assert raw.encode() not in dump, "a raw id is in Redis"
    assert {p.split("|")[1] for p in month["parties"]} == {keyed(supplier), keyed(customer)}
    assert set(month["accounts"]) == {keyed(f"{bank}/{a}") for a in accounts}
