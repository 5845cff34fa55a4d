"""Kernels of the 95 building-block items, shared by the monthly and the quarterly product."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from engine.products.classify import LENDING
from engine.products.kernels._base import ALL, OP_IN, OP_OUT, TRADE, Context, Value, kernel, ratio

# Items that are one sum or one count of flows: (item, inflow?, classes, subtype, bank
# channel, amount or count). The formula column of specs/products.toml says the same.
_FLOW_ITEMS: tuple[tuple[str, bool, frozenset[str] | None, str | None, str | None, int], ...] = (
    ("inflow_amount_fen", True, ALL, None, None, 0),
    ("inflow_count", True, ALL, None, None, 1),
    ("outflow_amount_fen", False, ALL, None, None, 0),
    ("outflow_count", False, ALL, None, None, 1),
    ("operating_inflow_fen", True, OP_IN, None, None, 0),
    ("operating_outflow_fen", False, OP_OUT, None, None, 0),
    ("cash_deposit_fen", True, frozenset({"CASH"}), None, None, 0),
    ("cash_deposit_count", True, frozenset({"CASH"}), None, None, 1),
    ("cash_withdrawal_fen", False, frozenset({"CASH"}), None, None, 0),
    ("cash_withdrawal_count", False, frozenset({"CASH"}), None, None, 1),
    ("self_transfer_in_fen", True, frozenset({"SELF"}), None, None, 0),
    ("self_transfer_out_fen", False, frozenset({"SELF"}), None, None, 0),
    ("bank_loan_disbursed_fen", True, frozenset({"BANK_OWN"}), None, "loan", 0),
    ("bank_loan_disbursed_count", True, frozenset({"BANK_OWN"}), None, "loan", 1),
    ("bank_loan_repaid_fen", False, frozenset({"BANK_OWN"}), None, "loan", 0),
    ("bank_loan_repayment_count", False, frozenset({"BANK_OWN"}), None, "loan", 1),
    ("bank_interest_paid_fen", False, frozenset({"BANK_OWN"}), None, "interest", 0),
    ("bank_fees_paid_fen", False, frozenset({"BANK_OWN"}), None, "fee", 0),
    ("margin_deposit_fen", False, frozenset({"BANK_OWN"}), None, "margin", 0),
    ("acceptance_bill_paid_fen", False, frozenset({"BANK_OWN"}), None, "bill", 0),
    ("utility_paid_fen", False, frozenset({"UTILITY"}), None, None, 0),
    ("power_paid_fen", False, frozenset({"UTILITY"}), "power", None, 0),
    ("water_paid_fen", False, frozenset({"UTILITY"}), "water", None, 0),
    ("gas_paid_fen", False, frozenset({"UTILITY"}), "gas", None, 0),
    ("heating_paid_fen", False, frozenset({"UTILITY"}), "heating", None, 0),
    ("telecom_paid_fen", False, frozenset({"UTILITY"}), "telecom", None, 0),
    ("tax_paid_fen", False, frozenset({"TAX"}), None, None, 0),
    ("tax_refund_fen", True, frozenset({"TAX"}), None, None, 0),
    ("social_insurance_paid_fen", False, frozenset({"SOCIAL"}), "social_insurance", None, 0),
    ("housing_fund_paid_fen", False, frozenset({"SOCIAL"}), "housing_fund", None, 0),
    ("government_received_fen", True, frozenset({"GOV_OTHER"}), None, None, 0),
    ("government_paid_fen", False, frozenset({"GOV_OTHER"}), None, None, 0),
    ("payroll_paid_fen", False, frozenset({"PAYROLL"}), None, None, 0),
    ("payroll_payment_count", False, frozenset({"PAYROLL"}), None, None, 1),
    ("psp_inflow_fen", True, frozenset({"PSP"}), None, None, 0),
    ("psp_inflow_count", True, frozenset({"PSP"}), None, None, 1),
    ("psp_outflow_fen", False, frozenset({"PSP"}), None, None, 0),
    ("trade_inflow_fen", True, frozenset({TRADE}), None, None, 0),
    ("trade_inflow_count", True, frozenset({TRADE}), None, None, 1),
    ("trade_outflow_fen", False, frozenset({TRADE}), None, None, 0),
    ("trade_outflow_count", False, frozenset({TRADE}), None, None, 1),
    ("fin_partner_inflow_fen", True, frozenset({"FIN_PARTNER"}), None, None, 0),
    ("fin_partner_inflow_count", True, frozenset({"FIN_PARTNER"}), None, None, 1),
    ("fin_partner_outflow_fen", False, frozenset({"FIN_PARTNER"}), None, None, 0),
    ("equity_inflow_fen", True, frozenset({"FIN_PARTNER"}), "investor", None, 0),
)


def _flow_kernel(
    inflow: bool,
    classes: frozenset[str] | None,
    subtype: str | None,
    channel: str | None,
    part: int,
) -> Callable[[Context], Value]:
    def compute(ctx: Context) -> Value:
        return ctx.flows(inflow, classes, subtype, channel)[part]

    return compute


for _item, _inflow, _classes, _subtype, _channel, _part in _FLOW_ITEMS:
    kernel(_item)(_flow_kernel(_inflow, _classes, _subtype, _channel, _part))


def _net(
    ctx: Context, classes: frozenset[str] | None, out_classes: frozenset[str] | None = None
) -> int:
    return ctx.amount_in(classes) - ctx.amount_out(classes if out_classes is None else out_classes)


def _share_of_flows(ctx: Context, classes: frozenset[str]) -> float | None:
    return ratio(
        ctx.amount_in(classes) + ctx.amount_out(classes), ctx.amount_in() + ctx.amount_out()
    )


_JUDICIAL = frozenset({"JUDICIAL"})
_FIN = frozenset({"FIN_PARTNER"})


# -- account funds -----------------------------------------------------------------------


@kernel("net_flow_fen")
def _net_flow(ctx: Context) -> Value:
    return _net(ctx, ALL)


@kernel("distinct_counterparties")
def _distinct_counterparties(ctx: Context) -> Value:
    return len(ctx.ids())


@kernel("active_days")
def _active_days(ctx: Context) -> Value:
    return sum(1 for day in ctx.days if day.txns)


@kernel("inflow_days")
def _inflow_days(ctx: Context) -> Value:
    return sum(1 for day in ctx.days if day.inflow)


@kernel("max_daily_inflow_fen")
def _max_daily_inflow(ctx: Context) -> Value:
    return max((day.inflow for day in ctx.days), default=0)


def fast_in_out(ctx: Context) -> float | None:
    """Money in and out on the same day, as a share of the period's inflow."""
    return ratio(sum(min(d.inflow, d.outflow) for d in ctx.days), ctx.amount_in())


@kernel("fast_in_out_ratio")
def _fast_in_out_ratio(ctx: Context) -> Value:
    return fast_in_out(ctx)


@kernel("operating_inflow_days")
def _operating_inflow_days(ctx: Context) -> Value:
    return sum(1 for day in ctx.days if day.operating_in)


@kernel("month_end_inflow_share")
def _month_end_inflow_share(ctx: Context) -> Value:
    if ctx.partial:  # the last five days have not all come: no share of them yet
        return None
    return ratio(sum(day.inflow for day in ctx.days[-5:]), ctx.amount_in())


# -- balances -----------------------------------------------------------------------------


@kernel("opening_balance_fen")
def _opening_balance(ctx: Context) -> Value:
    return sum(ctx.history.balances_at_end_of(ctx.period.first_month - 1).values())


@kernel("closing_balance_fen")
def _closing_balance(ctx: Context) -> Value:
    return sum(ctx.history.balances_at_end_of(ctx.period.last_month).values())


@kernel("average_daily_balance_fen")
def _average_daily_balance(ctx: Context) -> Value:
    return ctx.average_daily_balance()


@kernel("max_daily_balance_fen")
def _max_daily_balance(ctx: Context) -> Value:
    return max(ctx.defined_eod, default=None)


@kernel("min_daily_balance_fen")
def _min_daily_balance(ctx: Context) -> Value:
    return min(ctx.defined_eod, default=None)


@kernel("low_balance_days")
def _low_balance_days(ctx: Context) -> Value:
    line = ctx.params["low_balance_fen"]
    return sum(1 for balance in ctx.defined_eod if balance < line)


@kernel("negative_balance_days")
def _negative_balance_days(ctx: Context) -> Value:
    return sum(ctx.overdrawn)  # per account: another's credit balance does not net it away


@kernel("accounts_with_activity")
def _accounts_with_activity(ctx: Context) -> Value:
    return len({a for m in ctx.months for a in ctx.history.month(m).accounts})


@kernel("judicial_deduction_fen")
def _judicial_deduction(ctx: Context) -> Value:
    return ctx.amount_out(_JUDICIAL)


@kernel("judicial_deduction_days")
def _judicial_deduction_days(ctx: Context) -> Value:
    return sum(1 for marks in ctx.marks if "judicial" in marks)


# -- cash, self transfers, banks, utilities, public bodies, platforms -------------------------


@kernel("cash_deposit_days")
def _cash_deposit_days(ctx: Context) -> Value:
    # the cash_in mark (state/month.py mark_of): the days keep inflow, not inflow by class
    return sum(1 for marks in ctx.marks if marks.get("cash_in", 0) > 0)


@kernel("cash_share_of_flow")
def _cash_share(ctx: Context) -> Value:
    return _share_of_flows(ctx, frozenset({"CASH"}))


@kernel("self_transfer_share")
def _self_share(ctx: Context) -> Value:
    return _share_of_flows(ctx, frozenset({"SELF"}))


@kernel("company_to_individual_fen")
def _company_to_individual(ctx: Context) -> Value:
    # the to_person mark (state/month.py mark_of): paid to a person, and not as salary, to
    # the firm's own account, by a court or to a lender, which the mark's order leaves out
    return sum(marks.get("to_person", 0) for marks in ctx.history.marks(ctx.months))


@kernel("individual_inflow_fen")
def _individual_inflow(ctx: Context) -> Value:
    # the from_person mark: received from a person in any class but SELF (the flows keep
    # classes, not kinds); a cash deposit by a person carries it beside cash_in
    return sum(marks.get("from_person", 0) for marks in ctx.history.marks(ctx.months))


@kernel("psp_inflow_days")
def _psp_inflow_days(ctx: Context) -> Value:
    return sum(1 for marks in ctx.marks if marks.get("psp_in", 0) > 0)


def paid_months(
    ctx: Context, months: list[int], classes: frozenset[str], subtype: str | None = None
) -> int:
    """How many of ``months`` have an outflow of ``classes`` (``subtype``)."""
    return sum(1 for m in months if ctx.amount_out(classes, [m], subtype=subtype) > 0)


_UTILITY = frozenset({"UTILITY"})
_SOCIAL = frozenset({"SOCIAL"})
_PAYROLL = frozenset({"PAYROLL"})


@kernel("power_months_12m")
def _power_months(ctx: Context) -> Value:
    return paid_months(ctx, ctx.window(12), _UTILITY, "power")


@kernel("water_months_12m")
def _water_months(ctx: Context) -> Value:
    return paid_months(ctx, ctx.window(12), _UTILITY, "water")


@kernel("gas_months_12m")
def _gas_months(ctx: Context) -> Value:
    return paid_months(ctx, ctx.window(12), _UTILITY, "gas")


@kernel("tax_burden_12m")
def _tax_burden(ctx: Context) -> Value:
    months = ctx.window(12)
    return ratio(ctx.amount_out(frozenset({"TAX"}), months), ctx.amount_in(OP_IN, months))


@kernel("payroll_without_social_months_12m")
def _payroll_without_social(ctx: Context) -> Value:
    return sum(
        1
        for m in ctx.window(12)
        if ctx.amount_out(_PAYROLL, [m]) > 0
        and ctx.amount_out(_SOCIAL, [m], subtype="social_insurance") == 0
    )


@kernel("distinct_psps")
def _distinct_psps(ctx: Context) -> Value:
    return len(ctx.of_class("PSP"))


# -- trade --------------------------------------------------------------------------------


@kernel("distinct_customers")
def _customers(ctx: Context) -> Value:
    return len(ctx.customers())


@kernel("distinct_suppliers")
def _suppliers(ctx: Context) -> Value:
    return len(ctx.suppliers())


def top_share(amounts: list[int], n: int) -> float | None:
    total = sum(amounts)
    return ratio(sum(sorted(amounts, reverse=True)[:n]), total)


def hhi(amounts: list[int]) -> float | None:
    total = sum(amounts)
    return None if total == 0 else sum((a / total) ** 2 for a in amounts)


@kernel("top1_customer_share")
def _top1_customer(ctx: Context) -> Value:
    return top_share([p.inflow for p in ctx.trade.values()], 1)


@kernel("top5_customer_share")
def _top5_customer(ctx: Context) -> Value:
    return top_share([p.inflow for p in ctx.trade.values()], 5)


@kernel("customer_hhi")
def _customer_hhi(ctx: Context) -> Value:
    return hhi([p.inflow for p in ctx.trade.values()])


@kernel("top1_supplier_share")
def _top1_supplier(ctx: Context) -> Value:
    return top_share([p.outflow for p in ctx.trade.values()], 1)


@kernel("top5_supplier_share")
def _top5_supplier(ctx: Context) -> Value:
    return top_share([p.outflow for p in ctx.trade.values()], 5)


@kernel("supplier_hhi")
def _supplier_hhi(ctx: Context) -> Value:
    return hhi([p.outflow for p in ctx.trade.values()])


@kernel("two_way_counterparties")
def _two_way(ctx: Context) -> Value:
    return sum(1 for p in ctx.trade.values() if p.inflow > 0 and p.outflow > 0)


@kernel("new_customers_inflow_fen")
def _new_customers_inflow(ctx: Context) -> Value:
    known = ctx.known(ctx.before(12))  # on record: a pruned month knows no one
    return sum(ctx.trade[c].inflow for c in ctx.customers() if c not in known)


# -- financing partners, cross-border -------------------------------------------------------


@kernel("distinct_fin_partners")
def _distinct_fin(ctx: Context) -> Value:
    return len(ctx.of_class("FIN_PARTNER"))


def _party(mark: str) -> str:
    return mark.split("|", 2)[2]  # "loan_in|<class>|<counterparty>" (state/month.py)


class LoanDay(NamedTuple):
    """A day of the period so far with a loan received, and what left the accounts on it
    and the two days after (into the next month: days to come have none yet)."""

    lent: int
    out: int
    to_other_lenders: int  # to a lender that lent nothing that day (paying one that did renews)
    to_persons: int  # the to_person marks: salaries, own accounts, courts and lenders apart
    to_self: int  # the to_self marks: the firm's own accounts elsewhere
    operating_out: int  # OP_OUT: suppliers, wages, tax, utilities, platforms, cash


def loan_days(ctx: Context) -> list[LoanDay]:
    """Each day of the period so far with a loan received (marks loan_in, by lender)."""
    months = [*ctx.months, ctx.period.last_month + 1]
    days, marks = ctx.history.days(months), ctx.history.marks(months)
    found = []
    for d in range(ctx.elapsed_days):
        lent = {_party(k): v for k, v in marks[d].items() if k.startswith("loan_in|")}
        if not lent:
            continue
        ahead = range(d, min(d + 3, len(days)))
        found.append(
            LoanDay(
                lent=sum(marks[d][k] for k in marks[d] if k.startswith("loan_in|")),
                out=sum(days[i].outflow for i in ahead),
                to_other_lenders=sum(
                    v
                    for i in ahead
                    for k, v in marks[i].items()
                    if k.startswith("to_lender|") and _party(k) not in lent
                ),
                to_persons=sum(marks[i].get("to_person", 0) for i in ahead),
                to_self=sum(marks[i].get("to_self", 0) for i in ahead),
                operating_out=sum(days[i].operating_out for i in ahead),
            )
        )
    return found


@kernel("loan_proceeds_out_3d_share")
def _loan_proceeds_out(ctx: Context) -> Value:
    days = loan_days(ctx)
    return ratio(sum(min(d.lent, d.out) for d in days), sum(d.lent for d in days))


@kernel("loan_proceeds_to_lenders_3d_fen")
def _loan_proceeds_to_lenders(ctx: Context) -> Value:
    return sum(min(d.lent, d.to_other_lenders) for d in loan_days(ctx))


@kernel("lender_inflow_fen")
def _lender_inflow(ctx: Context) -> Value:
    return sum(ctx.amount_in(_FIN, subtype=subtype) for subtype in sorted(LENDING))


@kernel("lenders_disbursing")
def _lenders_disbursing(ctx: Context) -> Value:
    # the loan_in marks are kept by lender ("loan_in|<class>|<counterparty>", state/month.py):
    # a lender is a counterparty, whichever class it came in as
    return len(
        {
            _party(mark)
            for marks in ctx.history.marks(ctx.months)
            for mark in marks
            if mark.startswith("loan_in|")
        }
    )


@kernel("external_financing_share")
def _external_financing(ctx: Context) -> Value:
    financing = ctx.amount_in(frozenset({"BANK_OWN"}), bank_channel="loan") + ctx.amount_in(
        frozenset({"FIN_PARTNER"})
    )
    return ratio(financing, ctx.amount_in())


@kernel("cross_border_inflow_fen")
def _xb_in(ctx: Context) -> Value:
    return ctx.cross("i")[0]


@kernel("cross_border_outflow_fen")
def _xb_out(ctx: Context) -> Value:
    return ctx.cross("o")[0]


@kernel("cross_border_share_of_flow")
def _xb_share(ctx: Context) -> Value:
    return ratio(ctx.cross("i")[0] + ctx.cross("o")[0], ctx.amount_in() + ctx.amount_out())


@kernel("foreign_currencies")
def _foreign_currencies(ctx: Context) -> Value:
    return len({c for m in ctx.months for c in ctx.history.month(m).currency})
