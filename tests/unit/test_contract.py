from typing import Any

import pytest

from engine import codec
from engine.events.contract import Elements, Invalid, RejectReason, Txn, split_message, validate
from tests.factories import event

BANK = "BANK0001"


def _reason(element: Any) -> RejectReason:
    result = validate(element, BANK)
    assert isinstance(result, Invalid), result
    assert result.detail  # every rejection says why
    return result.reason


def test_a_valid_event_is_normalized() -> None:
    txn = validate(event(), BANK)
    assert isinstance(txn, Txn)
    assert txn.inflow and txn.amount_fen == 12_345 and txn.currency == "CNY"
    assert txn.to_event()["booked_at"] == "2026-03-05T10:22:13+08:00"


def test_unknown_fields_are_ignored_and_currency_defaults_to_cny() -> None:
    plain = validate(event(), BANK)
    extra = event(extra_field={"x": 1})
    del extra["currency"]
    other = validate(extra, BANK)
    assert isinstance(plain, Txn) and isinstance(other, Txn)
    assert other.currency == "CNY" and other.content_hash == plain.content_hash


def test_the_same_instant_written_in_utc_has_the_same_content() -> None:
    a = validate(event(booked_at="2026-03-05T10:22:13+08:00"), BANK)
    b = validate(event(booked_at="2026-03-05T02:22:13Z"), BANK)
    assert isinstance(a, Txn) and isinstance(b, Txn)
    assert a.booked_us == b.booked_us and a.content_hash == b.content_hash


def test_any_changed_content_changes_the_hash() -> None:
    base = validate(event(), BANK)
    assert isinstance(base, Txn)
    for change in (
        {"amount_fen": 1},
        {"direction": "out"},
        {"balance_after_fen": 0},
        {"counterparty": {"id": "X"}},
        {"account": "other"},
        {"channel": "cash"},
    ):
        changed = validate(event(**change), BANK)
        assert isinstance(changed, Txn) and changed.content_hash != base.content_hash, change


@pytest.mark.parametrize(
    ("element", "reason"),
    [
        (event(schema=2), RejectReason.UNSUPPORTED_SCHEMA),
        ({k: v for k, v in event().items() if k != "txn_id"}, RejectReason.MISSING_FIELD),
        ({k: v for k, v in event().items() if k != "counterparty"}, RejectReason.MISSING_FIELD),
        (event(counterparty={"name": "x"}), RejectReason.MISSING_FIELD),
        (event(amount_fen="100"), RejectReason.BAD_TYPE),
        (event(amount_fen=100.0), RejectReason.BAD_TYPE),
        (event(amount_fen=True), RejectReason.BAD_TYPE),
        (event(txn_id=7), RejectReason.BAD_TYPE),
        (event(counterparty="x"), RejectReason.BAD_TYPE),
        ("not an object", RejectReason.BAD_TYPE),
        (event(enterprise_id="91350100M000100Y44"), RejectReason.BAD_ENTERPRISE_ID),
        (event(enterprise_id="short"), RejectReason.BAD_ENTERPRISE_ID),
        (event(bank="OTHER001"), RejectReason.BANK_MISMATCH),
        (event(amount_fen=0), RejectReason.BAD_AMOUNT),
        (event(amount_fen=-5), RejectReason.BAD_AMOUNT),
        (event(amount_fen=10**15 + 1), RejectReason.BAD_AMOUNT),
        (event(balance_after_fen=10**18), RejectReason.BAD_AMOUNT),
        (event(booked_at="2026-03-05 10:22"), RejectReason.BAD_TIMESTAMP),
        (event(booked_at="2026-03-05T10:22:13"), RejectReason.BAD_TIMESTAMP),
        (event(booked_at="2026-02-30T10:22:13Z"), RejectReason.BAD_TIMESTAMP),
        (event(booked_at="1999-12-31T10:22:13Z"), RejectReason.BAD_TIMESTAMP),
        (event(booked_at="2999-01-01T00:00:00Z"), RejectReason.BAD_TIMESTAMP),
        (event(direction="sideways"), RejectReason.BAD_VALUE),
        (event(channel="teleport"), RejectReason.BAD_VALUE),
        (event(currency="cny"), RejectReason.BAD_VALUE),
        (event(txn_id="x" * 65), RejectReason.BAD_VALUE),
        (event(txn_id="T1", reversal_of="T1"), RejectReason.BAD_REVERSAL),
    ],
)
def test_each_rule_has_its_reason(element: Any, reason: RejectReason) -> None:
    assert _reason(element) == reason


def test_exact_amount_limits_are_accepted() -> None:
    assert isinstance(validate(event(amount_fen=1), BANK), Txn)
    assert isinstance(validate(event(amount_fen=10**15), BANK), Txn)
    assert isinstance(validate(event(balance_after_fen=-(10**17)), BANK), Txn)


def test_split_message() -> None:
    assert split_message(codec.dumps(event())) == Elements([event()], is_batch=False)
    batch = split_message(codec.dumps([event(), event(txn_id="T2")]))
    assert isinstance(batch, Elements) and batch.is_batch and len(batch.items) == 2
    for raw, reason in (
        (b"{not json", RejectReason.MALFORMED_JSON),
        (b"\xff\xfe", RejectReason.MALFORMED_JSON),
        (None, RejectReason.MALFORMED_JSON),
        (b"[]", RejectReason.EMPTY_BATCH),
        (b"42", RejectReason.BAD_TYPE),
    ):
        result = split_message(raw)
        assert isinstance(result, Invalid) and result.reason == reason, raw


def test_bookings_before_the_kept_history_are_too_old() -> None:
    oldest = validate(event(booked_at="2026-01-01T00:00:00+08:00"), BANK)
    assert isinstance(oldest, Txn)
    assert _reason_with(event(booked_at="2025-12-31T23:59:59+08:00"), oldest.booked_us) == (
        RejectReason.TOO_OLD
    )
    assert isinstance(validate(event(), BANK, oldest.booked_us), Txn)


def _reason_with(element: Any, oldest_us: int) -> RejectReason:
    result = validate(element, BANK, oldest_us)
    assert isinstance(result, Invalid)
    return result.reason


def _kind_of(counterparty: dict[str, Any]) -> Txn:
    txn = validate(event(counterparty=counterparty), BANK)
    assert isinstance(txn, Txn), txn
    return txn


def test_counterparty_kind_defaults_from_the_id_and_is_kept_only_where_it_differs() -> None:
    person, firm = "11010519491231002X", "91110000600037341L"
    assert _kind_of({"id": person}).cp_kind is None  # the shape says individual
    assert _kind_of({"id": person, "kind": "individual"}).cp_kind is None
    assert _kind_of({"id": person, "kind": "organization"}).cp_kind == "organization"
    assert _kind_of({"id": firm, "kind": "organization"}).cp_kind is None
    assert _kind_of({"id": "ACCT-77", "kind": "individual"}).cp_kind == "individual"
    assert _kind_of({"id": "ACCT-77", "kind": "individual"}).to_event()["counterparty"] == {
        "id": "ACCT-77",
        "kind": "individual",
    }


def test_spelling_out_the_default_kind_is_a_redelivery_and_another_kind_a_conflict() -> None:
    plain = _kind_of({"id": "ACCT-77"})
    assert _kind_of({"id": "ACCT-77", "kind": "organization"}).content_hash == plain.content_hash
    assert _kind_of({"id": "ACCT-77", "kind": "individual"}).content_hash != plain.content_hash


@pytest.mark.parametrize("kind", ["Individual", "person", "", 1, True, ["individual"], {}])
def test_an_unknown_counterparty_kind_is_a_bad_value(kind: Any) -> None:
    result = validate(event(counterparty={"id": "ACCT-77", "kind": kind}), BANK)
    assert isinstance(result, Invalid) and result.reason == RejectReason.BAD_VALUE


@pytest.mark.parametrize("channel", ["margin", "bill"])
def test_margin_deposits_and_acceptance_bills_have_channels_of_their_own(channel: str) -> None:
    # spec version 10: what the bank books into a margin account, or pays on a bill it
    # accepted, is an event of the contract (before, a bank had to call it transfer)
    txn = validate(event(channel=channel), BANK)
    assert isinstance(txn, Txn) and txn.to_event()["channel"] == channel
    assert _reason(event(channel=channel.upper())) == RejectReason.BAD_VALUE
