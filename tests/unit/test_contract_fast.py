"""The intake's fast path gives exactly what the contract's reference path gives.

``agents.intake.route`` (the worker's and the profile target's code) takes
``engine.events.fast_contract.valid_rows`` for a message it accepts and split_message + validate
otherwise. Each test compares it with the reference path alone, written out here, on the
wire bytes of the routed rows and on every reject's index, reason, detail and original.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agents.intake import route
from engine import codec
from engine.events.contract import Invalid, split_message, validate
from engine.events.fast_contract import valid_rows
from engine.periods import month_start_us
from tests.factories import event
from tests.strategies import BANKS, CHANNELS, ENTERPRISES, base_event

TOPIC, PARTITION, OFFSET = "bank.BANK0001.txns", 3, 1207
# The strategies' bookings run from Nov 2024 to Feb 2026, tests.factories.event's is in
# March 2026; the oldest kept months cut through them (too_old), and so does an earlier now.
NOW_US = (datetime(2026, 4, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).days * 86_400 * 10**6
EARLIER_NOW_US = NOW_US - 200 * 86_400 * 10**6
OLDEST = (None, month_start_us(2025 * 12), month_start_us(2025 * 12 + 5))

Outcome = tuple[bytes, list[tuple[int | None, str, str, bytes]]]


def _reference(value: bytes | None, bank: str, oldest_us: int | None, now: int) -> Outcome:
    """What the intake did before the fast path: every element through validate."""
    rows: list[list[Any]] = []
    rejects: list[tuple[int | None, str, str, bytes]] = []
    elements = split_message(value)
    if isinstance(elements, Invalid):
        rejects.append((None, elements.reason.value, elements.detail, value or b""))
    else:
        for index, element in enumerate(elements.items):
            position = index if elements.is_batch else None
            result = validate(element, bank, oldest_us, now)
            if isinstance(result, Invalid):
                original = codec.dumps(element) if elements.is_batch else value or b""
                rejects.append((position, result.reason.value, result.detail, original))
            else:
                rows.append([*result, TOPIC, PARTITION, OFFSET, position])
    return codec.dumps(rows), rejects


def _routed(value: bytes | None, bank: str, oldest_us: int | None, now: int) -> Outcome:
    rows, rejects = route(value, bank, TOPIC, PARTITION, OFFSET, oldest_us, now)
    # Wire bytes, not ==: 1 == 1.0 == True in Python, not for the ledger reading the JSON.
    return codec.dumps(rows), [
        (r.position, r.invalid.reason.value, r.invalid.detail, r.original) for r in rejects
    ]


def _assert_same(value: bytes | None, bank: str, oldest_us: int | None, now: int) -> None:
    assert _routed(value, bank, oldest_us, now) == _reference(value, bank, oldest_us, now)


# -- elements: valid ones from the strategies, then broken in every way the contract names --

_FIELDS = (
    "schema",
    "txn_id",
    "bank",
    "enterprise_id",
    "account",
    "booked_at",
    "direction",
    "amount_fen",
    "currency",
    "balance_after_fen",
    "channel",
    "counterparty",
    "reversal_of",
)
_CP_FIELDS = ("id", "name", "bank", "kind")
_EDGE_INTS = (0, 1, -1, 2, 10**15, 10**15 + 1, 10**17, 10**17 + 1, -(10**17), -(10**17) - 1)
_BIG_INTS = (2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30, -(10**30))
_EDGE_TEXTS = (
    "",
    "x" * 18,
    "x" * 19,
    "x" * 64,
    "x" * 65,
    "é" * 64,  # lengths are in code points: 64 characters, 128 bytes
    "😀" * 65,
    "名" * 256,
    "名" * 257,
    "CNY",
    "CNY\n",
    "cny",
    "USD",
    "in",
    "out",
    "IN",
    "transfer",
    "other",
    "BANK0001",
    "BANK0002",
    " ",
    "\x00",
)
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(_EDGE_INTS + _BIG_INTS),
    st.integers(),
    st.sampled_from((1.0, 0.5, -0.0, 1e15, 1e300, 12345.0)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(_EDGE_TEXTS),
    st.text(max_size=70),
    st.lists(st.integers(0, 3), max_size=2),
    st.dictionaries(
        st.sampled_from(("id", "name", "x")), st.sampled_from((None, "x", 1)), max_size=2
    ),
)
_DIGITS = "0123456789"


@st.composite
def _timestamps(draw: st.DrawFn) -> str:
    """Near misses of RFC 3339 around every rule of contract.parse_booked_at."""
    year = draw(st.sampled_from((1999, 2000, 2024, 2025, 2026, 2027, 2999)))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = (
        draw(st.integers(0, 25)),
        draw(st.integers(0, 61)),
        draw(st.integers(0, 61)),
    )
    text = (
        f"{year:04d}-{month:02d}-{day:02d}"
        + draw(st.sampled_from(("T", "T", "t", " ", "_")))
        + f"{hour:02d}:{minute:02d}:{second:02d}"
        + draw(st.sampled_from(("", "", ".5", ".123456", ".1234567891", ".", ".1234567890")))
        + draw(st.sampled_from(("Z", "+08:00", "-05:30", "z", "+00:00", "+24:00", "+8:00", "")))
        + draw(st.sampled_from(("", "", "\n", " ", "x")))
    )
    if draw(st.integers(0, 5)) == 0:  # \d takes other scripts' digits; int() reads them
        at = draw(st.sampled_from([i for i, ch in enumerate(text) if ch in _DIGITS]))
        digit = draw(st.sampled_from(("٣", "３", "0", "9")))
        text = text[:at] + digit + text[at + 1 :]
    return text


# Per field, the values just either side of its rules (any field also gets any value).
_NEAR_MISSES: dict[str, tuple[Any, ...]] = {
    "schema": (1, 2, 0, -1, True, 1.0, "1", None),
    "txn_id": ("T1", "", "x" * 64, "x" * 65, "交" * 64, "交" * 65, 7, None),
    "bank": ("BANK0001", "BANK0002", "bank0001", "BANK0001 ", "", None, 1),
    "enterprise_id": (*ENTERPRISES, ENTERPRISES[0].lower(), ENTERPRISES[0][:17], "", None, 18),
    "account": ("A", "", "a" * 64, "a" * 65, "账" * 64, 7, None),
    "booked_at": (
        "2026-03-05T10:22:13Z",
        "2026-03-05t10:22:13z",
        "2026-03-05 10:22:13.123456789-05:30",
        "2026-03-05T10:22:13.1234567891Z",
        "2026-03-05T10:22:13+08:00\n",
        "2026-03-05T10:22:59Z",
        "2026-03-05T10:22:60Z",
        "2026-03-05T10:60:13Z",
        "2026-03-05T23:59:59Z",
        "2026-03-05T24:00:00Z",
        "2026-02-29T10:22:13Z",
        "2024-02-29T10:22:13Z",
        "2026-03-05T10:22:13",
        "2026-03-05T10:22:13+0800",
        "2026-03-05T10:2٣:13Z",
        "2026-03-05T10:22:1٣Z",
        "2026-03-0٣T10:22:13Z",
        "2026-03-05T10:22",
        "1999-12-31T23:59:59Z",
        "2000-01-01T00:00:00Z",
        "2000-01-01T00:00:00+00:01",
        "2999-01-01T00:00:00Z",
        "",
        None,
        1,
    ),
    "direction": ("in", "out", "IN", "Out", "", "inn", None, 1, True),
    "amount_fen": (*_EDGE_INTS, *_BIG_INTS, 1.0, 1e15, True, False, "1", None),
    "currency": ("CNY", "USD", "cny", "CN", "CNYY", "", "CNY\n", "\nCNY", "C1Y", "ÀBC", None, 1),
    "balance_after_fen": (*_EDGE_INTS, *_BIG_INTS, 0.0, -1.5, True, "0", None),
    "channel": (*CHANNELS, "Transfer", "", "teleport", "transfer ", None, 3),
    "counterparty": (
        {},
        {"id": ""},
        {"id": "x" * 64},
        {"id": "x" * 65},
        {"id": 1},
        {"id": None},
        {"id": "CP-1", "name": ""},
        {"id": "CP-1", "name": "名" * 256},
        {"id": "CP-1", "name": "名" * 257},
        {"id": "CP-1", "name": 1},
        {"id": "CP-1", "name": None, "bank": None},
        {"id": "CP-1", "bank": ""},
        {"id": "CP-1", "bank": "b" * 64},
        {"id": "CP-1", "bank": "b" * 65},
        {"id": "CP-1", "bank": False},
        {"id": "CP-1", "kind": "individual"},
        {"id": "CP-1", "kind": "organization"},
        {"id": "11010519491231002X", "kind": "organization"},
        {"id": "11010519491231002X", "kind": "individual"},
        {"id": "CP-1", "kind": "Individual"},
        {"id": "CP-1", "kind": ""},
        {"id": "CP-1", "kind": None},
        {"id": "CP-1", "kind": 1},
        {"id": "CP-1", "kind": ["individual"]},
        {"id": "CP-1", "kind": {"k": "v"}},
        {"id": "CP-1", "x": 1.5},
        "x",
        [],
        None,
    ),
    "reversal_of": ("T0000", "T0001", "", "x" * 64, "x" * 65, None, 5, False),
}
_NEAR: dict[str, st.SearchStrategy[Any]] = {
    name: st.sampled_from(values) for name, values in _NEAR_MISSES.items()
}
_NEAR["booked_at"] = _NEAR["booked_at"] | _timestamps()


def _other_id(enterprise_id: str, at: int, char: str) -> str:
    return enterprise_id[:at] + char + enterprise_id[at + 1 :]


@st.composite
def _element(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 15)) == 0:
        return draw(_VALUES)  # not an object at all
    element: dict[str, Any] = draw(base_event(draw(st.integers(0, 99))))
    element["bank"] = "BANK0001" if draw(st.integers(0, 9)) else draw(st.sampled_from(BANKS))
    roll = draw(st.integers(0, 5))
    if roll == 0:
        element["reversal_of"] = draw(st.sampled_from((element["txn_id"], "T9999", None)))
    elif roll == 1:
        element["counterparty"]["name"] = draw(st.sampled_from(("某某贸易有限公司", "A", None)))
        element["counterparty"]["kind"] = draw(st.sampled_from(("organization", "individual")))
    elif roll == 2:
        del element["currency"]  # CNY when absent
    # Mostly none or one change: a message the fast path must refuse is then one near miss.
    for _ in range(draw(st.sampled_from((0, 0, 0, 1, 1, 1, 2, 3)))):
        change = draw(st.sampled_from((0, 0, 0, *range(10))))
        counterparty = element.get("counterparty")
        if change == 0:
            name = draw(st.sampled_from(_FIELDS))
            element[name] = draw(st.one_of(_NEAR[name], _VALUES))
        elif change == 1:
            element.pop(draw(st.sampled_from(_FIELDS)), None)
        elif change == 2:  # unknown fields are ignored, whatever they hold
            element[draw(st.sampled_from(("extra", "Schema", "counterparty_id")))] = draw(_VALUES)
        elif change == 3 and isinstance(counterparty, dict):
            counterparty[draw(st.sampled_from(_CP_FIELDS))] = draw(_VALUES)
        elif change == 4 and isinstance(counterparty, dict):
            counterparty.pop(draw(st.sampled_from(_CP_FIELDS)), None)
        elif change == 5 and isinstance(counterparty, dict):
            counterparty["extra"] = draw(_VALUES)
        elif change == 6:
            element["booked_at"] = draw(_timestamps())
        elif change == 7:
            base = draw(st.sampled_from(ENTERPRISES))
            element["enterprise_id"] = draw(
                st.sampled_from(
                    (
                        _other_id(base, draw(st.integers(0, 17)), draw(st.sampled_from("0AIXY"))),
                        base.lower(),
                        base[:17],
                        base + "0",
                        ENTERPRISES[0],
                    )
                )
            )
        elif change == 8:
            element["txn_id"] = draw(st.sampled_from(("T1", "x" * 64, "x" * 65, "", "交易" * 32)))
            element["reversal_of"] = draw(st.sampled_from(("T1", None, element.get("txn_id"))))
        else:
            element["amount_fen"] = draw(st.sampled_from((*_EDGE_INTS, 1.0, True)))
    return element


def _encode(value: Any, ascii_only: bool, spaced: bool) -> bytes:
    # The standard library, not orjson: it writes ints beyond 64 bits, which banks may send.
    separators = (", ", ": ") if spaced else (",", ":")
    return json.dumps(value, ensure_ascii=ascii_only, separators=separators).encode()


@st.composite
def _element_bytes(draw: st.DrawFn) -> bytes:
    element = draw(_element())
    ascii_only, spaced = draw(st.booleans()), draw(st.booleans())
    raw = _encode(element, ascii_only, spaced)
    if isinstance(element, dict) and element and draw(st.integers(0, 5)) == 0:
        # A duplicate key, before or after the original: the last one counts.
        key = _encode(draw(st.sampled_from((*_FIELDS, "extra"))), ascii_only, spaced)
        value = _encode(draw(_VALUES), ascii_only, spaced)
        pair = key + b":" + value
        raw = b"{" + pair + b"," + raw[1:] if draw(st.booleans()) else raw[:-1] + b"," + pair + b"}"
    return raw


_NASTY_BYTES = (
    b'"',
    b"\\",
    b"\xff",
    b"\xed\xa0\x80",
    b"0",
    b"-",
    b".",
    b"e",
    b"}",
    b",",
    b" ",
    b"\n",
)


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(_element_bytes(), min_size=1, max_size=3))
    raw = parts[0] if draw(st.integers(0, 3)) == 0 else b"[" + b",".join(parts) + b"]"
    if draw(st.integers(0, 7)) == 0:  # one byte broken somewhere: JSON the parsers may differ on
        at = draw(st.integers(0, len(raw)))
        cut = draw(st.integers(0, 1))
        raw = raw[:at] + draw(st.sampled_from(_NASTY_BYTES)) + raw[at + cut :]
    return raw


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=_messages(),
    oldest_us=st.sampled_from(OLDEST),
    now=st.sampled_from((NOW_US, EARLIER_NOW_US)),
)
@example(value=codec.dumps([event()]), oldest_us=None, now=NOW_US)
def test_any_message_routes_as_the_reference_does(
    value: bytes, oldest_us: int | None, now: int
) -> None:
    _assert_same(value, "BANK0001", oldest_us, now)


# -- whole messages, and JSON the two parsers could read differently ---------------------

_VALID = codec.dumps(event())
_VALID_BODY = _VALID[1:-1]  # the fields of a valid event, without braces


def _with(extra: bytes) -> bytes:
    """A valid event with more raw JSON text inside its object."""
    return b"{" + _VALID_BODY + b"," + extra + b"}"


def _with_counterparty(raw: bytes) -> bytes:
    return _VALID.replace(b'"counterparty":{', b'"counterparty":{' + raw + b",")


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b" ",
        b"[]",
        b"{}",
        b"null",
        b"42",
        b'"x"',
        b"true",
        b"[1]",
        b"[[]]",
        b"[null]",
        b"{not json",
        b"\xff\xfe",
        _VALID,
        b"[" + _VALID + b"]",
        b"[" + _VALID + b"," + _VALID + b"]",
        b"[" + _VALID + b",7]",
        b" \n[" + _VALID + b"]\t ",
        b"\xef\xbb\xbf" + _VALID,  # a byte order mark
        _VALID + b"x",
        _VALID + b"\x00",
        b"[" + _VALID + b",]",
        _with(b'"x":NaN'),
        _with(b'"x":Infinity'),
        _with(b'"x":1e400'),  # orjson: not JSON it takes
        _with(b'"x":-1e400'),
        _with(b'"x":1e-400'),
        _with(b'"x":123456789012345678901234567890'),  # orjson: a float
        _with(b'"x":' + b"[" * 1100 + b"]" * 1100),  # deeper than orjson goes
        _with(b'"x":' + b"[" * 500 + b"]" * 500),
        _with(b'"x":"\xff"'),  # invalid UTF-8 in a field both ignore
        _with(b'"\xff":1'),
        _with(b'"x":"\xed\xa0\x80"'),  # an encoded surrogate
        _with(b'"x":"\\ud800"'),  # a lone surrogate, escaped
        _with(b'"x":"\\udc00\\ud800"'),
        _with(b'"amount_fen":1.0'),
        _with(b'"amount_fen":1e2'),
        _with(b'"amount_fen":-0'),
        _with(b'"amount_fen":true'),
        _with(b'"amount_fen":18446744073709551616'),
        _with(b'"balance_after_fen":-9223372036854775809'),
        _with(b'"schema":1.0'),
        _with(b'"schema":true'),
        _with(b'"currency":"CNY\\n"'),
        _with(b'"currency":null'),
        _with(b'"reversal_of":null'),
        _with(b'"reversal_of":"T0001"'),
        _with(b'"amount_fen":"x"'),
        b'{"amount_fen":"x",' + _VALID_BODY + b"}",  # duplicates: the last one counts
        b'{"amount_fen":0,' + _VALID_BODY + b"}",
        b'{"counterparty":null,' + _VALID_BODY + b"}",
        _with(b'"counterparty":{"id":"Y","id":"Z"}'),
        _with(b'"counterparty":{"id":"Y"},"counterparty":null'),
        _with(b'"schem\\u0061":2'),  # an escaped key is the same key
        _with(b'"\\u0073chema":1'),
        _with_counterparty(b'"name":null'),
        _with_counterparty(b'"name":""'),
        _with_counterparty(b'"name":"\\ud83d\\ude00"'),  # an escaped surrogate pair
        _with_counterparty(b'"name":"\xf0\x9f\x98\x80"'),
        _with_counterparty(b'"bank":7'),
        _with_counterparty(b'"x":1e400'),
        _VALID.replace(b"+08:00", b"Z"),
        _VALID.replace(b"T10:22:13", b" 10:22:13"),
        _VALID.replace(b"10:22:13", b"10:22:60"),
        _VALID.replace(b"10:22:13", b"10:60:13"),
        _VALID.replace(b"10:22:13", b"24:22:13"),
        _VALID.replace(b"10:22:13", b"10:22:13.1234567891"),
        _VALID.replace(b"+08:00", b"+08:00\\n"),
        _VALID.replace(b"10:22:13", "10:2٣:13".encode()),
        _VALID.replace(b"2026-03-05", b"2026-02-30"),
        _VALID.replace(b"2026-03-05", b"2026-W10-4"),
    ],
)
def test_whole_messages_route_as_the_reference_does(value: bytes | None) -> None:
    for oldest_us in OLDEST:
        _assert_same(value, "BANK0001", oldest_us, NOW_US)
    if value is not None and value.startswith(b"{"):  # the same event as a batch of one
        _assert_same(b"[" + value + b"]", "BANK0001", None, NOW_US)


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name, values in _NEAR_MISSES.items() for value in values],
)
def test_each_near_miss_routes_as_the_reference_does(name: str, value: Any) -> None:
    for message in (
        event(**{name: value}),
        [event(**{name: value})],
        [event(), event(**{name: value})],
    ):
        _assert_same(_encode(message, False, False), "BANK0001", None, NOW_US)
    absent = event()
    absent.pop(name, None)
    _assert_same(_encode([absent], True, True), "BANK0001", None, NOW_US)


# -- and the fast path is the one taken for everyday messages -----------------------------


@settings(max_examples=200, deadline=None)
@given(st.lists(base_event(0), min_size=1, max_size=5), st.booleans())
def test_valid_events_take_the_fast_path(events: list[dict[str, Any]], single: bool) -> None:
    for element in events:
        element["bank"] = "BANK0001"
    value = codec.dumps(events[0] if single else events)
    rows = valid_rows(value, "BANK0001", TOPIC, PARTITION, OFFSET, None, NOW_US)
    assert rows is not None
    assert codec.dumps(rows) == _reference(value, "BANK0001", None, NOW_US)[0]
