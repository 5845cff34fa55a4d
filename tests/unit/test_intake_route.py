"""Intake's routing of one bank message: bad input never stops it."""

from __future__ import annotations

from agents.intake import route
from engine import codec
from engine.events.contract import RejectReason
from engine.periods import now_us
from tests.factories import event


def test_an_element_too_deep_to_write_back_is_rejected_with_the_whole_batch() -> None:
    # orjson reads 1,024 levels of nesting but writes only 255.
    deep = "[" * 300 + "]" * 300
    good = codec.dumps(event(txn_id="OK-1", bank="ICBC0001"))
    bad = codec.dumps(event(txn_id="BAD-1", bank="ICBC0001", amount_fen=0))[:-1]
    message = b"[" + good + b"," + bad + b',"extra":' + deep.encode() + b"}]"
    rows, rejects = route(message, "ICBC0001", "bank.ICBC0001.txns", 0, 7, None, now_us())
    assert [row[2] for row in rows] == ["OK-1"]
    [reject] = rejects
    assert reject.position == 1 and reject.invalid.reason == RejectReason.BAD_AMOUNT
    assert reject.original == message and "whole batch" in reject.invalid.detail
