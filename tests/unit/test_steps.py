"""Stages decode a take of messages in bounded runs: in order, none lost, none split."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from agents.intake import in_steps


@dataclass
class _Msg:
    value: bytes | None
    topic: str = "t"
    partition: int = 0
    offset: int = 0


@given(st.lists(st.integers(min_value=0, max_value=50)), st.integers(min_value=1, max_value=80))
def test_runs_keep_order_and_stay_under_the_bound(sizes: list[int], bound: int) -> None:
    messages = [_Msg(b"x" * n if n else None, offset=i) for i, n in enumerate(sizes)]
    steps = list(in_steps(messages, bound))
    assert [m for step in steps for m in step] == messages
    for step in steps:
        assert step, "no empty run"
        total = sum(len(m.value or b"") for m in step)
        assert total <= bound or len(step) == 1  # one oversized message is a run of its own
