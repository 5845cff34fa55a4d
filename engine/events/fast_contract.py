"""The intake's fast path: a message whose every event is valid, checked at C speed.

:func:`engine.events.contract.validate` is the contract's single source of truth, and the only
source of reject reasons and details. This module only ever *accepts*: msgspec decodes a
whole message straight into typed structs that carry every rule msgspec can check (types,
bools and floats are not ints, string lengths in code points, integer bounds, the closed
vocabularies), and the few rules left are checked here in Python. When anything does not
hold, from malformed JSON to an unknown field or one invalid element, :func:`valid_rows`
returns None and the caller takes the reference path (split_message + validate) for the
whole message. tests/unit/test_contract_fast.py checks that both give the same events.

Unknown fields are forbidden here, not ignored: every byte of an accepted message is then
decoded into a typed field, so msgspec and orjson (which parses the reference path, and
rejects some JSON in fields msgspec would merely skip: invalid UTF-8, 1e400, deep nesting)
can never disagree about a message this path accepts. Events with unknown fields still
pass, through the reference path.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from engine.events import credit_code
from engine.events.contract import (
    CHANNELS,
    CURRENCY_PATTERN,
    FUTURE_SLACK_US,
    MAX_ABS_BALANCE_FEN,
    MAX_AMOUNT_FEN,
    MIN_BOOKED_US,
    hash_content,
    kept_kind,
    parse_booked_at,
)

__all__ = ["valid_rows"]

_Text64 = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


# gc=False: the structs hold only strings, ints and each other, so they cannot form a cycle,
# and a step's thousands of them stay out of the collector's generations.
class _Counterparty(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    id: _Text64
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    bank: _Text64 | None = None
    kind: Literal["organization", "individual"] | None = None


class _Event(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    schema: Literal[1]
    txn_id: _Text64
    bank: _Text64
    enterprise_id: Annotated[str, msgspec.Meta(min_length=1, max_length=18)]
    account: _Text64
    booked_at: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    direction: Literal["in", "out"]
    amount_fen: Annotated[int, msgspec.Meta(gt=0, le=MAX_AMOUNT_FEN)]
    balance_after_fen: Annotated[int, msgspec.Meta(ge=-MAX_ABS_BALANCE_FEN, le=MAX_ABS_BALANCE_FEN)]
    channel: str  # checked in Python against contract.CHANNELS, its one declaration
    counterparty: _Counterparty
    # Checked in Python with the contract's own pattern: its "$" also takes "CNY\n".
    currency: str = "CNY"
    reversal_of: _Text64 | None = None


_DECODER = msgspec.json.Decoder(list[_Event] | _Event)
_NO_LATEST = 1 << 62  # bounds are applied per event, after the cached part
# "MM:SS" -> microseconds into the hour, for ASCII "00:00" to "59:59" only.
_MINUTE_SECOND_US = {
    f"{m:02d}:{s:02d}": (m * 60 + s) * 1_000_000 for m in range(60) for s in range(60)
}
_hours: dict[str, int | None] = {}
_UNKNOWN = -1  # no hour starts at the epoch's last microsecond


def _booked_us(text: str) -> int | None:
    """``booked_at`` in epoch microseconds as contract.parse_booked_at reads it, before its bounds.

    The regex parse was a fifth of the intake's time; events of one hour share their date,
    hour, offset and fraction, and that part is cached. The contract's pattern has fixed
    widths up to the seconds, so ``text`` is valid exactly when it is with "00:00" in place
    of its minutes and seconds, and those are "00:00" to "59:59". None: not known valid.
    """
    if len(text) < 20:  # shorter cannot be valid, and the cache key must keep text[19:] apart
        return None
    within_us = _MINUTE_SECOND_US.get(text[14:19])
    if within_us is None:
        return None
    key = text[:14] + text[19:]
    hour_us = _hours.get(key, _UNKNOWN)
    if hour_us is _UNKNOWN:
        parsed = parse_booked_at(text[:14] + "00:00" + text[19:], _NO_LATEST)
        hour_us = parsed if type(parsed) is int else None
        if len(_hours) > 100_000:  # bounded: a flood of odd timestamps must not grow memory
            _hours.clear()
        _hours[key] = hour_us
    return None if hour_us is None else hour_us + within_us


def valid_rows(
    value: bytes | None,
    bank: str,
    topic: str,
    partition: int,
    offset: int,
    oldest_us: int | None,
    now: int,
) -> list[list[Any]] | None:
    """The routed rows of a message whose every event is valid; None otherwise.

    A row is what ``[*validate(element, bank, oldest_us, now), topic, partition, offset,
    index]`` would be (the routed wire format; ``index`` is None for a single-event message).
    None says nothing about why: take the reference path for the whole message.
    """
    if value is None:
        return None
    try:
        doc = _DECODER.decode(value)
    except msgspec.DecodeError:  # ValidationError is one too
        return None
    if isinstance(doc, list):
        if not doc:  # empty_batch, from the reference path
            return None
        events, batch = doc, True
    else:
        events, batch = [doc], False
    latest_us = now + FUTURE_SLACK_US
    earliest_us = MIN_BOOKED_US if oldest_us is None else max(oldest_us, MIN_BOOKED_US)
    rows: list[list[Any]] = []
    for index, event in enumerate(events):
        enterprise_id = event.enterprise_id
        booked_at = event.booked_at
        booked_us = _booked_us(booked_at)
        if (
            booked_us is None
            or event.bank != bank
            or not credit_code.is_valid_cached(enterprise_id)
        ):
            return None
        currency = event.currency
        reversal_of = event.reversal_of
        if (
            not earliest_us <= booked_us <= latest_us
            or event.channel not in CHANNELS
            or (currency != "CNY" and not CURRENCY_PATTERN.match(currency))
            or reversal_of == event.txn_id
        ):
            return None
        inflow = event.direction == "in"
        cp = event.counterparty
        cp_kind = None if cp.kind is None else kept_kind(cp.id, cp.kind)
        content_hash = hash_content(  # as validate does: a redelivery finds its first copy
            enterprise_id,
            event.account,
            booked_us,
            inflow,
            event.amount_fen,
            currency,
            event.balance_after_fen,
            event.channel,
            cp.id,
            cp.name,
            cp.bank,
            reversal_of,
            cp_kind,
        )
        rows.append(  # a Txn's fields in their order, then the source: as agents/intake.py
            [
                enterprise_id,
                bank,
                event.txn_id,
                event.account,
                booked_us,
                booked_at,
                inflow,
                event.amount_fen,
                currency,
                event.balance_after_fen,
                event.channel,
                cp.id,
                cp.name,
                cp.bank,
                cp_kind,
                reversal_of,
                content_hash,
                topic,
                partition,
                offset,
                index if batch else None,
            ]
        )
    return rows
