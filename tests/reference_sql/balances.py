"""The balance items: sums over accounts of the balance after each account's last booking.

``opening_balance_fen`` and ``closing_balance_fen`` read the transactions themselves (every
account with a transaction before the period starts / at or before its last day, whatever
pruning has dropped); the daily items read the ``eod`` view, which has a row only for the
period's days that have begun at the pull and on which some account already had a
transaction.
"""

from __future__ import annotations

__all__ = ["ITEMS"]


def _last_balances(day_condition: str) -> str:
    """Per period, the sum over accounts of the balance after the account's last
    transaction whose day meets ``day_condition`` (booked_at order, ties by txn_id)."""
    return f"""
    WITH last_booking AS (
        SELECT p.ent, p.label, t.bank, t.account, arg_max(t.balance, (t.us, t.txn_id)) AS balance
        FROM periods p JOIN txn t ON t.ent = p.ent AND {day_condition}
        GROUP BY p.ent, p.label, t.bank, t.account
    )
    SELECT p.ent, p.label, coalesce(sum(b.balance), 0) AS value
    FROM periods p LEFT JOIN last_booking b ON b.ent = p.ent AND b.label = p.label
    GROUP BY p.ent, p.label
    """


def _daily(value: str) -> str:
    """``value``, an aggregate over the period's end-of-day balances ``e.eod``."""
    return f"""
    SELECT p.ent, p.label, {value} AS value
    FROM periods p LEFT JOIN eod e ON e.ent = p.ent AND e.label = p.label
    GROUP BY p.ent, p.label
    """


_OPENING = _last_balances("t.day < p.d0")
_CLOSING = _last_balances("t.day <= p.d1")
_AVERAGE = "CASE WHEN count(e.eod) = 0 THEN NULL ELSE fdiv(sum(e.eod), count(e.eod)) END"

ITEMS: dict[str, str] = {
    "opening_balance_fen": _OPENING,
    "closing_balance_fen": _CLOSING,
    "average_daily_balance_fen": _daily(_AVERAGE),
    "max_daily_balance_fen": _daily("max(e.eod)"),
    "min_daily_balance_fen": _daily("min(e.eod)"),
    "low_balance_days": _daily("count(*) FILTER (WHERE e.eod < param('low_balance_fen'))"),
    # a day on which one account at least ends below zero, whatever the others hold
    "negative_balance_days": _daily("count(*) FILTER (WHERE e.overdrawn)"),
}
