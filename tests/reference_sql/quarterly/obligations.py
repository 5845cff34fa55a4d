"""Obligations, payment continuity and the longest run without operating inflow.

Debt service is loan repayments and interest to the reporting banks plus what was paid to
financing partners that lend (spec version 11: guarantors and investors apart). Runs of
days count the quarter's days that have begun at the pull.
"""

from __future__ import annotations

from tests.reference_sql.flows import OP_IN, OP_OUT
from tests.reference_sql.quarterly._sql import (
    growth,
    per_quarter,
    quarter_sum,
    share,
    window,
)

__all__ = ["ITEMS"]

_IN_QUARTER = "LEFT JOIN ptxn t ON t.ent = q.ent AND t.label = q.label"
_OP_IN = f"coalesce(sum(t.amount) FILTER (WHERE t.inflow AND t.cls IN {OP_IN}), 0)"
_BANK = "t.cls = 'BANK_OWN' AND t.channel"
_LENDING = "('bank', 'lender', 'lessor', 'factor')"  # the FIN_PARTNER subtypes that lend
# debt only: principal and interest to the bank, and what partners that lend are paid
_DEBT = (
    "coalesce(sum(t.amount) FILTER (WHERE NOT t.inflow AND ("
    f"({_BANK} IN ('loan', 'interest')) OR (t.cls = 'FIN_PARTNER' AND t.sub IN {_LENDING}))), 0)"
)


def _partner(inflow: bool, subtype: str) -> str:
    """The quarter's flow with financing partners of ``subtype``, in or out."""
    direction = "t.inflow" if inflow else "NOT t.inflow"
    return per_quarter(
        f"coalesce(sum(t.amount) FILTER (WHERE {direction} AND t.cls = 'FIN_PARTNER' "
        f"AND t.sub = '{subtype}'), 0)",
        _IN_QUARTER,
    )


# a loan came in on day d of the quarter (up to the pull's day): the account-holding bank on
# channel loan, or a partner that lends; what was paid to a destination on d, d + 1 or d + 2
# (into the next quarter) counts up to that day's loans
_LOANS_IN = (
    f"((t.cls = 'BANK_OWN' AND t.channel = 'loan') "
    f"OR (t.cls = 'FIN_PARTNER' AND t.sub IN {_LENDING}))"
)


def _proceeds_to(destination: str) -> str:
    """``destination``: a condition on the paid transaction ``x``."""
    return f"""
SELECT q.ent, q.label, coalesce(sum(least(l.lent, l.paid)), 0) AS value
FROM quarters q LEFT JOIN (
    SELECT d.ent, d.label, d.lent,
           (SELECT coalesce(sum(x.amount), 0) FROM txn x
            WHERE x.ent = d.ent AND NOT x.inflow AND x.day BETWEEN d.day AND d.day + 2
              AND ({destination})) AS paid
    FROM (SELECT k.ent, k.label, t.day, sum(t.amount) AS lent
          FROM quarters k JOIN txn t ON t.ent = k.ent AND t.day BETWEEN k.d0 AND k.e1
          WHERE t.inflow AND {_LOANS_IN}
          GROUP BY k.ent, k.label, t.day) d
) l ON l.ent = q.ent AND l.label = q.label
GROUP BY q.ent, q.label
"""


# a person, paid as anything but wages, the firm's own money, a court's or a lender's
_TO_PERSON = (
    "x.individual AND x.cls NOT IN ('PAYROLL', 'SELF', 'JUDICIAL') AND NOT "
    + _LOANS_IN.replace("t.", "x.")
)


def _months(n: int, column: str) -> str:
    return window(n, f"count(*) FILTER (WHERE w.{column} > 0)")


# the longest run of months of W(12) on record without a utility payment: gaps-and-islands
# over the months that qualify
_UTILITY_GAP = per_quarter(
    """coalesce((SELECT max(run) FROM (
        SELECT count(*) AS run FROM (
            SELECT w.month, w.month - row_number() OVER (ORDER BY w.month) AS island
            FROM ms w
            WHERE w.ent = q.ent AND w.month BETWEEN q.w1 - 11 AND q.w1 AND w.util_out = 0)
        GROUP BY island)), 0)"""
)

_UTILITY_CV = window(
    12,
    "CASE WHEN count(*) FILTER (WHERE w.util_out > 0) < 2 THEN NULL "
    "ELSE stddev_pop(w.util_out::DOUBLE) FILTER (WHERE w.util_out > 0) "
    "/ avg(w.util_out::DOUBLE) FILTER (WHERE w.util_out > 0) END",
)


def _tax_quarters(backs: range) -> str:
    return " + ".join(
        f"CASE WHEN {quarter_sum('tax_out', back, base=False)} > 0 THEN 1 ELSE 0 END"
        for back in backs
    )


# the last four quarters that are over: this one, or while it is partial the four before it
_TAX_QUARTERS = per_quarter(
    f"CASE WHEN q.partial THEN {_tax_quarters(range(1, 5))} ELSE {_tax_quarters(range(4))} END"
)

# the longest run of the quarter's days (up to the pull, from the firm's first transaction:
# a day before it existed is no day without inflow) without operating inflow
_DRY_DAYS = per_quarter(
    f"""coalesce((SELECT max(run) FROM (
        SELECT count(*) AS run FROM (
            SELECT d.day, d.day - CAST(row_number() OVER (ORDER BY d.day) AS INTEGER) AS island
            FROM (SELECT unnest(generate_series(
                      greatest(q.d0, (SELECT r.first_day FROM record r WHERE r.ent = q.ent)),
                      q.e1, INTERVAL 1 DAY))::DATE AS day) d
            WHERE NOT EXISTS (SELECT 1 FROM ptxn t WHERE t.ent = q.ent AND t.label = q.label
                              AND t.day = d.day AND t.inflow AND t.cls IN {OP_IN}))
        GROUP BY island)), 0)"""
)


ITEMS: dict[str, str] = {
    # obligations
    "debt_service_fen": per_quarter(_DEBT, _IN_QUARTER),
    "debt_service_coverage": per_quarter(share(_OP_IN, _DEBT), _IN_QUARTER),
    "bank_loans_disbursed_ttm_fen": window(12, "coalesce(sum(w.loan_in), 0)"),
    "debt_service_ttm_fen": window(
        12, "coalesce(sum(w.loan_out) + sum(w.interest_out) + sum(w.lend_out), 0)"
    ),
    "online_lender_inflow_fen": _partner(True, "lender"),
    "leasing_paid_fen": _partner(False, "lessor"),
    "factoring_inflow_fen": _partner(True, "factor"),
    "guarantee_fees_paid_fen": _partner(False, "guarantor"),
    "loan_proceeds_to_individuals_3d_fen": _proceeds_to(_TO_PERSON),
    "loan_proceeds_to_self_3d_fen": _proceeds_to("x.cls = 'SELF'"),
    "loan_proceeds_to_operations_3d_fen": _proceeds_to(f"x.cls IN {OP_OUT}"),
    "judicial_months_12m": _months(12, "judicial_out"),
    "new_financing_partners": per_quarter(
        """(SELECT count(DISTINCT c.cp) FROM cpm c WHERE c.ent = q.ent AND c.cls = 'FIN_PARTNER'
            AND c.month BETWEEN q.m0 AND q.m1
            AND NOT EXISTS (SELECT 1 FROM cpm k WHERE k.ent = q.ent AND k.cp = c.cp
                            AND k.month BETWEEN q.m0 - 12 AND q.m0 - 1))"""
    ),
    # continuity
    "utility_months_12m": _months(12, "util_out"),
    "tax_months_12m": _months(12, "tax_out"),
    "social_insurance_months_12m": _months(12, "social_out"),
    "payroll_months_12m": _months(12, "payroll_out"),
    "longest_utility_gap_12m": _UTILITY_GAP,
    "utility_payment_cv_12m": _UTILITY_CV,
    "tax_quarters_4q": _TAX_QUARTERS,
    # the public payments against the same quarter a year earlier
    "power_paid_yoy_growth": growth("power_out", 4),
    "water_paid_yoy_growth": growth("water_out", 4),
    "gas_paid_yoy_growth": growth("gas_out", 4),
    "payroll_paid_yoy_growth": growth("payroll_out", 4),
    "tax_paid_yoy_growth": growth("tax_out", 4),
    # quality flags (the signals: tests/reference_sql/quarterly/signals.py)
    "longest_no_operating_inflow_days": _DRY_DAYS,
}
