"""Concentration and stickiness: who the customers and suppliers are, across quarters.

A customer (supplier) of a span of months is a trade counterparty whose inflow over the span
exceeds (falls short of) its outflow; "known" in a window is a counterparty with at least one
transaction, either direction, in it; "a transaction in P" likewise.
"""

from __future__ import annotations

from tests.reference_sql.quarterly._sql import per_quarter, share, whole_only

__all__ = ["ITEMS"]


def _parties(first: str, last: str, having: str) -> str:
    """Trade counterparties of the months ``first``..``last`` (SQL over ``q``) whose sums
    meet ``having`` (over ``cp_in`` / ``cp_out``), with those sums."""
    return f"""(SELECT c.cp, sum(c.cp_in) AS cp_in, sum(c.cp_out) AS cp_out FROM cpm c
        WHERE c.ent = q.ent AND c.cls = 'TRADE' AND c.month BETWEEN {first} AND {last}
        GROUP BY c.cp HAVING {having})"""


def _known(cp: str, first: str, last: str) -> str:
    return f"""EXISTS (SELECT 1 FROM cpm k WHERE k.ent = q.ent AND k.cp = {cp}
        AND k.month BETWEEN {first} AND {last})"""


_THIS = ("q.m0", "q.m1")
_PREVIOUS = ("q.m0 - 3", "q.m0 - 1")
_W12 = ("q.w1 - 11", "q.w1")
_CUSTOMER = "sum(c.cp_in) > sum(c.cp_out)"
_SUPPLIER = "sum(c.cp_out) > sum(c.cp_in)"
_ANY = "TRUE"


def _hhi(span: tuple[str, str]) -> str:
    return f"""(SELECT {
        share("sum(x.cp_in::DOUBLE * x.cp_in::DOUBLE) / sum(x.cp_in)", "sum(x.cp_in)")
    }
        FROM {_parties(*span, _ANY)} x)"""


def _top1(span: tuple[str, str]) -> str:
    return f"(SELECT {share('max(x.cp_in)', 'sum(x.cp_in)')} FROM {_parties(*span, _ANY)} x)"


def _change(now: str, then: str) -> str:
    return per_quarter(
        whole_only(f"CASE WHEN {now} IS NULL OR {then} IS NULL THEN NULL ELSE {now} - {then} END")
    )


def _inflow_share_known(months: int, inflow: bool) -> str:
    """Trade inflow (outflow) of the quarter from counterparties known in M(1..months)."""
    column = "cp_in" if inflow else "cp_out"
    known = _known("x.cp", f"q.m0 - {months}", "q.m0 - 1")
    ratio = share(f"coalesce(sum(x.{column}) FILTER (WHERE {known}), 0)", f"sum(x.{column})")
    return per_quarter(f"(SELECT {ratio} FROM {_parties(*_THIS, _ANY)} x)")


def _new(having: str) -> str:
    known = _known("x.cp", "q.m0 - 12", "q.m0 - 1")
    return per_quarter(
        f"(SELECT count(*) FILTER (WHERE NOT {known}) FROM {_parties(*_THIS, having)} x)"
    )


def _lost(having: str) -> str:
    seen = _known("x.cp", *_THIS)
    return per_quarter(
        whole_only(
            f"(SELECT count(*) FILTER (WHERE NOT {seen}) FROM {_parties(*_PREVIOUS, having)} x)"
        )
    )


_DOMINANT = per_quarter(
    """(SELECT count(*) FROM (
        SELECT c.month FROM cpm c WHERE c.ent = q.ent AND c.cls = 'TRADE'
          AND c.month BETWEEN q.m0 AND q.m1
        GROUP BY c.month HAVING max(c.cp_in) > 0.5 * sum(c.cp_in)))"""
)

_RETENTION = per_quarter(
    whole_only(f"""(SELECT CASE WHEN count(*) = 0 THEN NULL
             ELSE (count(*) FILTER (WHERE {_known("x.cp", *_THIS)}))::DOUBLE / count(*) END
        FROM {_parties(*_PREVIOUS, _CUSTOMER)} x)""")
)

_ACTIVE_MONTHS = per_quarter(
    f"""(SELECT avg((SELECT count(DISTINCT k.month) FROM cpm k WHERE k.ent = q.ent
                     AND k.cp = x.cp AND k.month BETWEEN q.w1 - 11 AND q.w1))
        FROM {_parties(*_THIS, _CUSTOMER)} x)"""
)

ITEMS: dict[str, str] = {
    "top1_customer_share_change_qoq": _change(_top1(_THIS), _top1(_PREVIOUS)),
    "customer_hhi_change_qoq": _change(_hhi(_THIS), _hhi(_PREVIOUS)),
    "dominant_customer_months": _DOMINANT,
    "top1_customer_share_12m": per_quarter(_top1(_W12)),
    "inflow_share_known_12m": _inflow_share_known(12, True),
    "outflow_share_known_12m": _inflow_share_known(12, False),
    "new_customers": _new(_CUSTOMER),
    "lost_customers": _lost(_CUSTOMER),
    "new_suppliers": _new(_SUPPLIER),
    "lost_suppliers": _lost(_SUPPLIER),
    "customer_retention_ratio": _RETENTION,
    "customer_active_months_12m": _ACTIVE_MONTHS,
}
