"""The trade items that look at each counterparty: customers, suppliers, concentration.

``cp_in`` / ``cp_out`` are one trade counterparty's inflow and outflow in the period
(table ``trade_parties``): a customer pays more than it is paid, a supplier the reverse.
Shares are of the period's trade inflow (customers) or trade outflow (suppliers) and are
null when that is 0.
"""

from __future__ import annotations

__all__ = ["ITEMS"]

_PARTIES = """
WITH parties AS (
    SELECT ent, label, cp,
           coalesce(sum(amount) FILTER (WHERE inflow), 0) AS cp_in,
           coalesce(sum(amount) FILTER (WHERE NOT inflow), 0) AS cp_out
    FROM ptxn WHERE cls = 'TRADE' GROUP BY ent, label, cp
), ranked AS (
    SELECT *, row_number() OVER (PARTITION BY ent, label ORDER BY cp_in DESC) AS in_rank,
              row_number() OVER (PARTITION BY ent, label ORDER BY cp_out DESC) AS out_rank,
              sum(cp_in) OVER (PARTITION BY ent, label) AS trade_in,
              sum(cp_out) OVER (PARTITION BY ent, label) AS trade_out
    FROM parties
)
"""


def _per_party(value: str) -> str:
    """``value``, an aggregate over the rows ``r`` of the period's trade counterparties."""
    return f"""{_PARTIES}
    SELECT p.ent, p.label, {value} AS value
    FROM periods p LEFT JOIN ranked r ON r.ent = p.ent AND r.label = p.label
    GROUP BY p.ent, p.label
    """


def _share(part: str, whole: str) -> str:
    return (
        f"CASE WHEN coalesce(any_value(r.{whole}), 0) = 0 THEN NULL "
        f"ELSE ({part})::DOUBLE / any_value(r.{whole})::DOUBLE END"
    )


_CUSTOMERS = "count(*) FILTER (WHERE r.cp_in > r.cp_out)"

# the trade inflow of the period's customers that had no transaction with the firm, of any
# class, in the 12 months before the period on record (``cpm`` holds only months on record)
_NEW_CUSTOMERS_INFLOW = f"""{_PARTIES}, fresh AS (
    SELECT r.ent, r.label, r.cp_in
    FROM ranked r JOIN periods p ON p.ent = r.ent AND p.label = r.label
    WHERE r.cp_in > r.cp_out
      AND NOT EXISTS (SELECT 1 FROM cpm k WHERE k.ent = r.ent AND k.cp = r.cp
                      AND k.month BETWEEN p.m0 - 12 AND p.m0 - 1)
)
SELECT p.ent, p.label, coalesce(sum(f.cp_in), 0) AS value
FROM periods p LEFT JOIN fresh f ON f.ent = p.ent AND f.label = p.label
GROUP BY p.ent, p.label
"""

ITEMS: dict[str, str] = {
    "distinct_customers": _per_party(_CUSTOMERS),
    "distinct_suppliers": _per_party("count(*) FILTER (WHERE r.cp_out > r.cp_in)"),
    "top1_customer_share": _per_party(_share("max(r.cp_in)", "trade_in")),
    "top5_customer_share": _per_party(
        _share("sum(r.cp_in) FILTER (WHERE r.in_rank <= 5)", "trade_in")
    ),
    "customer_hhi": _per_party(
        _share("sum(r.cp_in::DOUBLE * r.cp_in::DOUBLE) / any_value(r.trade_in)", "trade_in")
    ),
    "top1_supplier_share": _per_party(_share("max(r.cp_out)", "trade_out")),
    "top5_supplier_share": _per_party(
        _share("sum(r.cp_out) FILTER (WHERE r.out_rank <= 5)", "trade_out")
    ),
    "supplier_hhi": _per_party(
        _share("sum(r.cp_out::DOUBLE * r.cp_out::DOUBLE) / any_value(r.trade_out)", "trade_out")
    ),
    # both paid the firm and were paid by it in the period
    "two_way_counterparties": _per_party("count(*) FILTER (WHERE r.cp_in > 0 AND r.cp_out > 0)"),
    "new_customers_inflow_fen": _NEW_CUSTOMERS_INFLOW,
}
