"""Report header and key indicators: the quarter's place in the firm's history, and the
twelve months ending with it."""

from __future__ import annotations

from tests.reference_sql.quarterly._sql import item, per_quarter, share, window

__all__ = ["ITEMS"]

_IN_QUARTER = "LEFT JOIN ptxn t ON t.ent = q.ent AND t.label = q.label"
_LAST_DAY = "(SELECT max(x.day) FROM txn x WHERE x.ent = q.ent AND x.day <= q.d1)"

ITEMS: dict[str, str] = {
    # header
    "reporting_banks": per_quarter("count(DISTINCT t.bank)", _IN_QUARTER),
    # the first transaction on record: pruning does not make a later one the first
    "first_transaction_date": per_quarter(
        "strftime(any_value(f.first_day), '%Y-%m-%d')",
        "JOIN record f ON f.ent = q.ent",
    ),
    "last_transaction_date": per_quarter(f"strftime(any_value({_LAST_DAY}), '%Y-%m-%d')"),
    "history_months": per_quarter(
        # to the quarter's last month, or to the pull's month while it is partial
        "greatest(0, least(36, CASE WHEN q.partial THEN q.w1 + 1 ELSE q.m1 END "
        "- any_value(f.first_month) + 1))",
        "JOIN record f ON f.ent = q.ent",
    ),
    # key indicators
    "ttm_operating_inflow_fen": window(12, "coalesce(sum(w.op_in), 0)"),
    "ttm_net_flow_fen": window(12, "coalesce(sum(w.in_all) - sum(w.out_all), 0)"),
    "ttm_average_daily_balance_fen": per_quarter(
        "CASE WHEN count(e.eod) = 0 THEN NULL ELSE fdiv(sum(e.eod), count(e.eod)) END",
        "LEFT JOIN eod_daily e ON e.ent = q.ent "
        "AND e.day >= month_first_day(greatest(q.w1 - 11, q.r0)) "
        "AND e.day < month_first_day(q.w1 + 1) "
        "AND e.day <= q.e1",
    ),
    # the closing balance over the mean monthly operating outflow of W(12)'s months on record
    "cash_cover_months": per_quarter(
        share(
            "any_value(c.value)",
            "(SELECT sum(x.op_out)::DOUBLE / count(*) FROM ms x "
            "WHERE x.ent = q.ent AND x.month BETWEEN q.w1 - 11 AND q.w1)",
        ),
        item("closing_balance_fen", "c"),
    ),
}
