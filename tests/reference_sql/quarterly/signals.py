"""The signals raised in the quarter: for each rule of specs/signals.toml, the days of the
quarter so far (up to the pull) that an episode of the rule covers.

The episodes are input data (the table ``episodes``: ent, rule, opened, closed, null while
open), as the workers kept them; tests/reference/signals.py checks the rules that raise
them. An episode covers the days from the one it opened on to the one before it closed.
"""

from __future__ import annotations

import tomllib

from tests.reference_sql._pipeline import SPECS
from tests.reference_sql.quarterly._sql import per_quarter

__all__ = ["ITEMS"]

with (SPECS / "signals.toml").open("rb") as _handle:
    _RULES = [r["id"] for r in tomllib.load(_handle)["rules"] if r["status"] == "evaluated"]


def _covered_days(rule: str) -> str:
    return per_quarter(
        f"""(SELECT count(*) FROM (
                SELECT unnest(generate_series(q.d0, q.e1, INTERVAL 1 DAY))::DATE AS day) d
             WHERE EXISTS (SELECT 1 FROM episodes e
                           WHERE e.ent = q.ent AND e.rule = '{rule}' AND e.opened <= d.day
                             AND (e.closed IS NULL OR d.day < e.closed)))"""
    )


ITEMS: dict[str, str] = {f"signal_{rule}_days": _covered_days(rule) for rule in _RULES}
