"""The items that are sums, counts and shares of one period's transactions.

Each item is one query: every period (month or quarter) of ``periods`` left-joined to its
transactions (``ptxn``), grouped by period, so a period without transactions still gets its
0 or its null. The vocabulary of specs/products.toml maps to SQL filters as below:
``in(C)`` is the sum of inflow amounts whose class is in C, ``n_in(C)`` their count,
``in(C, s)`` restricted to subtype s (for BANK_OWN, to channel s), XB the cross-border ones.
"""

from __future__ import annotations

__all__ = ["ITEMS", "per_period"]

OP_IN = "('TRADE', 'PSP', 'CASH')"
OP_OUT = "('TRADE', 'PAYROLL', 'UTILITY', 'TAX', 'SOCIAL', 'GOV_OTHER', 'PSP', 'CASH')"


def per_period(value: str) -> str:
    """A query giving ``value`` (an aggregate over the rows ``t`` of one period's
    transactions) for every period."""
    return (
        f"SELECT p.ent, p.label, {value} AS value FROM periods p "
        "LEFT JOIN ptxn t ON t.ent = p.ent AND t.label = p.label "
        "GROUP BY p.ent, p.label"
    )


def _in(where: str = "TRUE") -> str:
    return f"coalesce(sum(t.amount) FILTER (WHERE t.inflow AND {where}), 0)"


def _out(where: str = "TRUE") -> str:
    return f"coalesce(sum(t.amount) FILTER (WHERE NOT t.inflow AND {where}), 0)"


def _n_in(where: str = "TRUE") -> str:
    return f"count(*) FILTER (WHERE t.inflow AND {where})"


def _n_out(where: str = "TRUE") -> str:
    return f"count(*) FILTER (WHERE NOT t.inflow AND {where})"


def _cls(*classes: str) -> str:
    return "t.cls IN (" + ", ".join(f"'{c}'" for c in classes) + ")"


def _share(part: str, whole: str) -> str:
    """part / whole as a decimal fraction; null when the whole is 0."""
    return f"CASE WHEN {whole} = 0 THEN NULL ELSE ({part})::DOUBLE / ({whole})::DOUBLE END"


def _bank(channel: str) -> str:
    return f"t.cls = 'BANK_OWN' AND t.channel = '{channel}'"


def _sub(cls: str, subtype: str) -> str:
    return f"t.cls = '{cls}' AND t.sub = '{subtype}'"


def _days_with_inflow(cls: str) -> str:
    """count(days d in P where in(cls, d) > 0), days so far (up to the pull's day, e1): an
    amount is above zero (the contract), so a day with one such inflow has a positive sum."""
    return f"count(DISTINCT t.day) FILTER (WHERE t.inflow AND t.cls = '{cls}' AND t.day <= p.e1)"


_ALL_FLOW = f"({_in()} + {_out()})"
# a lender: the account-holding bank on channel loan, or a financing partner that lends
_LENDING = "('bank', 'lender', 'lessor', 'factor')"  # the FIN_PARTNER subtypes that lend
_BANK_LOAN = "t.cls = 'BANK_OWN' AND t.channel = 'loan'"
_LENDER = f"({_BANK_LOAN}) OR (t.cls = 'FIN_PARTNER' AND t.sub IN {_LENDING})"

_EXPRESSIONS: dict[str, str] = {
    # account_funds
    "inflow_amount_fen": _in(),
    "inflow_count": _n_in(),
    "outflow_amount_fen": _out(),
    "outflow_count": _n_out(),
    "net_flow_fen": f"{_in()} - {_out()}",
    "distinct_counterparties": "count(DISTINCT t.cp) FILTER (WHERE t.cp <> t.ent)",
    "operating_inflow_fen": _in(f"t.cls IN {OP_IN}"),
    "operating_outflow_fen": _out(f"t.cls IN {OP_OUT}"),
    # days of the period so far (up to the pull's day: e1; a bank may book up to a day
    # ahead of the pull, and that day has not come)
    "active_days": "count(DISTINCT t.day) FILTER (WHERE t.day <= p.e1)",
    "inflow_days": "count(DISTINCT t.day) FILTER (WHERE t.inflow AND t.day <= p.e1)",
    "operating_inflow_days": (
        f"count(DISTINCT t.day) FILTER (WHERE t.inflow AND t.cls IN {OP_IN} AND t.day <= p.e1)"
    ),
    # the last five calendar days of the period; none yet while it is partial
    "month_end_inflow_share": (
        f"CASE WHEN any_value(p.partial) THEN NULL "
        f"ELSE {_share(_in('t.day > p.d1 - 5'), _in())} END"
    ),
    # balances: the one that is not about balances
    "accounts_with_activity": (
        "count(DISTINCT (t.bank, t.account)) FILTER (WHERE t.txn_id IS NOT NULL)"
    ),
    "judicial_deduction_fen": _out(_cls("JUDICIAL")),
    "judicial_deduction_days": (
        "count(DISTINCT t.day) FILTER (WHERE NOT t.inflow AND t.cls = 'JUDICIAL' AND t.day <= p.e1)"
    ),
    # cash
    "cash_deposit_fen": _in(_cls("CASH")),
    "cash_deposit_count": _n_in(_cls("CASH")),
    "cash_withdrawal_fen": _out(_cls("CASH")),
    "cash_withdrawal_count": _n_out(_cls("CASH")),
    # days of the period so far with a deposit: the sum of the day's cash inflow above zero
    "cash_deposit_days": _days_with_inflow("CASH"),
    "cash_share_of_flow": _share(f"{_in(_cls('CASH'))} + {_out(_cls('CASH'))}", _ALL_FLOW),
    # self_transfers
    "self_transfer_in_fen": _in(_cls("SELF")),
    "self_transfer_out_fen": _out(_cls("SELF")),
    "self_transfer_share": _share(f"{_in(_cls('SELF'))} + {_out(_cls('SELF'))}", _ALL_FLOW),
    # paid to a person: not as salary (PAYROLL), to the firm itself, by a court, nor to a lender
    "company_to_individual_fen": _out(
        f"t.individual AND t.cls NOT IN ('PAYROLL', 'SELF', 'JUDICIAL') AND NOT ({_LENDER})"
    ),
    # received from a person, whatever the class, the firm's own accounts apart
    "individual_inflow_fen": _in("t.individual AND t.cls <> 'SELF'"),
    # bank_dealings
    "bank_loan_disbursed_fen": _in(_bank("loan")),
    "bank_loan_disbursed_count": _n_in(_bank("loan")),
    "bank_loan_repaid_fen": _out(_bank("loan")),
    "bank_loan_repayment_count": _n_out(_bank("loan")),
    "bank_interest_paid_fen": _out(_bank("interest")),
    "bank_fees_paid_fen": _out(_bank("fee")),
    "margin_deposit_fen": _out(_bank("margin")),
    "acceptance_bill_paid_fen": _out(_bank("bill")),
    # utilities
    "utility_paid_fen": _out(_cls("UTILITY")),
    "power_paid_fen": _out(_sub("UTILITY", "power")),
    "water_paid_fen": _out(_sub("UTILITY", "water")),
    "gas_paid_fen": _out(_sub("UTILITY", "gas")),
    "heating_paid_fen": _out(_sub("UTILITY", "heating")),
    "telecom_paid_fen": _out(_sub("UTILITY", "telecom")),
    # tax_social_payroll
    "tax_paid_fen": _out(_cls("TAX")),
    "tax_refund_fen": _in(_cls("TAX")),
    "social_insurance_paid_fen": _out(_sub("SOCIAL", "social_insurance")),
    "housing_fund_paid_fen": _out(_sub("SOCIAL", "housing_fund")),
    "government_received_fen": _in(_cls("GOV_OTHER")),
    "government_paid_fen": _out(_cls("GOV_OTHER")),
    "payroll_paid_fen": _out(_cls("PAYROLL")),
    "payroll_payment_count": _n_out(_cls("PAYROLL")),
    # payment_platforms
    "psp_inflow_fen": _in(_cls("PSP")),
    "psp_inflow_count": _n_in(_cls("PSP")),
    "psp_outflow_fen": _out(_cls("PSP")),
    "psp_inflow_days": _days_with_inflow("PSP"),
    "distinct_psps": "count(DISTINCT t.cp) FILTER (WHERE t.cls = 'PSP')",
    # trade: the sums (the counterparty-level items are in trade.py)
    "trade_inflow_fen": _in(_cls("TRADE")),
    "trade_inflow_count": _n_in(_cls("TRADE")),
    "trade_outflow_fen": _out(_cls("TRADE")),
    "trade_outflow_count": _n_out(_cls("TRADE")),
    # financing_partners
    "fin_partner_inflow_fen": _in(_cls("FIN_PARTNER")),
    "fin_partner_inflow_count": _n_in(_cls("FIN_PARTNER")),
    "fin_partner_outflow_fen": _out(_cls("FIN_PARTNER")),
    "distinct_fin_partners": "count(DISTINCT t.cp) FILTER (WHERE t.cls = 'FIN_PARTNER')",
    "external_financing_share": _share(f"{_in(_bank('loan'))} + {_in(_cls('FIN_PARTNER'))}", _in()),
    # debt and equity apart: the partners that lend, and the investors
    "lender_inflow_fen": _in(f"t.cls = 'FIN_PARTNER' AND t.sub IN {_LENDING}"),
    "equity_inflow_fen": _in(_sub("FIN_PARTNER", "investor")),
    "lenders_disbursing": f"count(DISTINCT t.cp) FILTER (WHERE t.inflow AND ({_LENDER}))",
    # cross_border
    "cross_border_inflow_fen": _in("t.xb"),
    "cross_border_outflow_fen": _out("t.xb"),
    "cross_border_share_of_flow": _share(f"{_in('t.xb')} + {_out('t.xb')}", _ALL_FLOW),
    "foreign_currencies": "count(DISTINCT t.currency) FILTER (WHERE t.currency <> 'CNY')",
}

# The largest total inflow of one day of the period so far: a per-day sum first.
_MAX_DAILY_INFLOW = """
SELECT p.ent, p.label, coalesce(max(d.total), 0) AS value
FROM periods p LEFT JOIN (
    SELECT ent, label, day, sum(amount) AS total FROM ptxn WHERE inflow GROUP BY ent, label, day
) d ON d.ent = p.ent AND d.label = p.label AND d.day <= p.e1
GROUP BY p.ent, p.label
"""

ITEMS: dict[str, str] = {item: per_period(value) for item, value in _EXPRESSIONS.items()}
ITEMS["max_daily_inflow_fen"] = _MAX_DAILY_INFLOW

# The days of each period so far with a loan received (``lent``), with the outflow of that day
# and the two after (any period: into the next month), and what of it was paid to a lender
# that lent nothing that day (paying the one that lent renews its loan).
_LOAN_DAYS = f"""
WITH loan_days AS (
    SELECT p.ent, p.label, t.day, sum(t.amount) AS lent
    FROM periods p JOIN txn t ON t.ent = p.ent AND t.day BETWEEN p.d0 AND p.e1
    WHERE t.inflow AND ({_LENDER})
    GROUP BY p.ent, p.label, t.day
), proceeds AS (
    SELECT l.*,
           (SELECT coalesce(sum(x.amount), 0) FROM txn x
            WHERE x.ent = l.ent AND NOT x.inflow AND x.day BETWEEN l.day AND l.day + 2) AS out3,
           (SELECT coalesce(sum(x.amount), 0) FROM txn x
            WHERE x.ent = l.ent AND NOT x.inflow AND x.day BETWEEN l.day AND l.day + 2
              AND ({_LENDER.replace("t.", "x.")})
              AND x.cp NOT IN (SELECT y.cp FROM txn y WHERE y.ent = l.ent AND y.day = l.day
                               AND y.inflow AND ({_LENDER.replace("t.", "y.")}))) AS to_others
    FROM loan_days l
)
"""


def _per_loan_day(value: str) -> str:
    """``value``, an aggregate over the rows ``l`` of the period's loan days."""
    return f"""{_LOAN_DAYS}
    SELECT p.ent, p.label, {value} AS value
    FROM periods p LEFT JOIN proceeds l ON l.ent = p.ent AND l.label = p.label
    GROUP BY p.ent, p.label
    """


ITEMS["loan_proceeds_out_3d_share"] = _per_loan_day(
    "CASE WHEN coalesce(sum(l.lent), 0) = 0 THEN NULL "
    "ELSE sum(least(l.lent, l.out3))::DOUBLE / sum(l.lent)::DOUBLE END"
)
ITEMS["loan_proceeds_to_lenders_3d_fen"] = _per_loan_day(
    "coalesce(sum(least(l.lent, l.to_others)), 0)"
)

# the sum over the period's days so far of the smaller of the day's inflow and outflow, over
# the period's inflow (in(ALL): every inflow booked in it)
ITEMS["fast_in_out_ratio"] = """
SELECT p.ent, p.label,
       (SELECT CASE WHEN coalesce(sum(t.amount) FILTER (WHERE t.inflow), 0) = 0 THEN NULL
                    ELSE (SELECT coalesce(sum(least(d.day_in, d.day_out)), 0)
                          FROM (SELECT coalesce(sum(x.amount) FILTER (WHERE x.inflow), 0)
                                           AS day_in,
                                       coalesce(sum(x.amount) FILTER (WHERE NOT x.inflow), 0)
                                           AS day_out
                                FROM ptxn x
                                WHERE x.ent = p.ent AND x.label = p.label AND x.day <= p.e1
                                GROUP BY x.day) d)::DOUBLE
                         / sum(t.amount) FILTER (WHERE t.inflow) END
        FROM ptxn t WHERE t.ent = p.ent AND t.label = p.label) AS value
FROM periods p
"""
