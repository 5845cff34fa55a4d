"""The quarterly product's own items (beyond the 95 it shares with the monthly one), one
query each over the quarters of ``periods``."""

from __future__ import annotations

from tests.reference_sql.quarterly import header, obligations, parties, signals, trend

__all__ = ["ITEMS"]

ITEMS: dict[str, str] = {
    **header.ITEMS,
    **trend.ITEMS,
    **parties.ITEMS,
    **obligations.ITEMS,
    **signals.ITEMS,
}
