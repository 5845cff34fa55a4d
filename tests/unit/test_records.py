"""The binary ledger record (state/records.py): lossless on everything the ledger writes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import codec
from engine.errors import StateError
from engine.events import contract
from engine.events.contract import MAX_AMOUNT_FEN
from engine.products.classify import SUBTYPES, CounterpartyClass
from state import records

_TEXT = st.text(min_size=1, max_size=64)  # any Unicode, as the contract allows
_HASHES = st.binary(min_size=8, max_size=8).map(bytes.hex)
_BALANCES = st.integers(-(10**17), 10**17)
_EVENTS = st.fixed_dictionaries(
    {"txn_id": _TEXT, "amount_fen": st.integers(1, MAX_AMOUNT_FEN), "memo": st.none() | _TEXT}
)
_KEPT = st.tuples(
    _EVENTS,
    st.tuples(
        _TEXT, st.integers(0, 2**31), st.integers(0, 2**62), st.none() | st.integers(0, 2**31)
    ),
).map(lambda kept: [kept[0], list(kept[1])])
_ALL_SUBTYPES = sorted({"", "other"}.union(*SUBTYPES.values()))


@st.composite
def ledger_records(draw: st.DrawFn) -> list[Any]:
    record: list[Any] = [None] * 16
    record[records.STATUS] = draw(
        st.sampled_from((records.COUNTED, records.REVERSED, records.REVERSAL, records.PENDING))
    )
    record[records.HASH] = draw(_HASHES)
    # Any microsecond (the contract's bookings are far narrower), negative ones included.
    record[records.BOOKED] = draw(st.integers(-(2**62), 2**62))
    record[records.INFLOW] = draw(st.booleans())
    record[records.AMOUNT] = draw(st.integers(1, MAX_AMOUNT_FEN))
    record[records.BALANCE] = draw(_BALANCES)
    record[records.ACCOUNT] = draw(_TEXT)
    record[records.CP] = draw(_TEXT)
    record[records.LINK] = draw(st.none() | _TEXT)
    record[records.EVENT] = draw(st.none() | _KEPT)
    record[records.CLASS] = draw(st.sampled_from(list(CounterpartyClass)))
    record[records.SUBTYPE] = draw(st.sampled_from(_ALL_SUBTYPES))
    record[records.CHANNEL] = draw(st.sampled_from(sorted(contract.CHANNELS)))
    record[records.CURRENCY] = draw(st.from_regex(r"\A[A-Z]{3}\Z"))
    record[records.REGISTRY] = draw(st.integers(1, 2**63 - 1))  # any TOML version
    record[records.INDIVIDUAL] = draw(st.booleans())
    return record


@given(ledger_records())
def test_decoding_an_encoded_record_gives_it_back(record: list[Any]) -> None:
    encoded = records.encode(record)
    decoded = records.decode(encoded)
    kept = record[records.HASH][:8]  # the first 4 of the content hash's 8 bytes
    assert decoded == [*record[: records.HASH], kept, *record[records.HASH + 1 :]]
    assert [type(value) for value in decoded] == [type(value) for value in record]
    assert records.hash_of(encoded) == kept == records.kept_hash(record[records.HASH])
    assert records.encode(decoded) == encoded  # a decoded record is written back unchanged


@given(ledger_records())
def test_a_format_1_record_is_read_with_its_hash_cut_to_what_is_kept(record: list[Any]) -> None:
    encoded = records.encode(record)
    at = records._HASH_AT
    # Format 1 was format 2 with all 8 bytes of the content hash.
    format_1 = bytes([1]) + encoded[1:at] + bytes.fromhex(record[records.HASH]) + encoded[at + 4 :]
    assert records.decode(format_1) == records.decode(encoded)
    assert records.hash_of(format_1) == records.hash_of(encoded)


@given(ledger_records())
def test_the_per_event_path_writes_the_same_bytes(record: list[Any]) -> None:
    record[records.STATUS], record[records.LINK], record[records.EVENT] = "C", None, None
    kind = records.kind(
        record[records.INFLOW],
        record[records.CLASS],
        record[records.SUBTYPE],
        record[records.CHANNEL],
        record[records.CURRENCY],
        record[records.REGISTRY],
        record[records.INDIVIDUAL],
    )
    fast = records.counted(
        kind,
        record[records.HASH],
        record[records.BOOKED],
        record[records.AMOUNT],
        record[records.BALANCE],
        record[records.ACCOUNT],
        record[records.CP],
    )
    assert fast == records.encode(record)


def test_the_code_tables_cover_every_class_subtype_and_channel() -> None:
    assert set(records.CLASSES) == set(CounterpartyClass)
    assert set(records.SUBTYPES) == set(_ALL_SUBTYPES)
    assert set(records.CHANNELS) == contract.CHANNELS
    for table in (records.CLASSES, records.SUBTYPES, records.CHANNELS):
        assert len(set(table)) == len(table)


def test_a_record_of_another_format_is_refused() -> None:
    record = [
        "C",
        "00" * 8,
        0,
        True,
        1,
        0,
        "A",
        "B",
        None,
        None,
        "TRADE",
        "",
        "transfer",
        "CNY",
        1,
        False,
    ]
    encoded = records.encode(record)
    with pytest.raises(StateError, match="format 3"):
        records.decode(bytes([3]) + encoded[1:])
    with pytest.raises(StateError, match="format 3"):
        records.hash_of(bytes([3]) + encoded[1:])
    with pytest.raises(StateError, match="format 91"):  # a JSON list, as before format 1
        records.decode(codec.dumps(record))


def test_a_hash_that_is_not_16_hex_digits_is_refused() -> None:
    kind = records.kind(True, "TRADE", "", "transfer", "CNY", 1)
    for bad in ("00" * 7, "00" * 9, "0g" * 8):
        with pytest.raises(ValueError):
            records.counted(kind, bad, 0, 1, 0, "A", "B")
    record = records.decode(records.counted(kind, "00" * 8, 0, 1, 0, "A", "B"))
    record[records.HASH] = "ABCDEF0123456789"  # decoded it would not be equal
    with pytest.raises(ValueError, match="content hash"):
        records.encode(record)
