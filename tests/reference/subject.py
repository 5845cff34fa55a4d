"""Reference, part 4: the information subject's items, in SQL over tables of records.

Written from the item definitions in specs/products.toml on another computational model
(SQLite) than the kernels (Python over dataclasses), so that a misreading in one does not
hide in the other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

DAY_US = 86_400_000_000

_SCHEMA = """
CREATE TABLE queries (at_us INTEGER, institution TEXT);
CREATE TABLE disputes (id TEXT, product TEXT, period TEXT, status TEXT, answered_at_us INTEGER);
CREATE TABLE disputed_items (dispute_id TEXT, item TEXT);
CREATE TABLE statements (filed_at_us INTEGER);
"""

_CST_DATE = "date(({col}) / 1000000 + 8 * 3600, 'unixepoch')"


def subject_items(
    now_us: int,
    product: str,
    period: str,
    queries: Iterable[tuple[int, str]] = (),
    disputes: Iterable[dict[str, Any]] = (),
    statements: Iterable[int] = (),
) -> dict[str, Any]:
    """``queries``: (at_us, institution) of answered queries by institutions; ``disputes``:
    dicts with id, product, period, status, answered_at_us, items; ``statements``: filing
    times."""
    db = sqlite3.connect(":memory:")
    db.executescript(_SCHEMA)
    db.executemany("INSERT INTO queries VALUES (?, ?)", list(queries))
    for d in disputes:
        db.execute(
            "INSERT INTO disputes VALUES (?, ?, ?, ?, ?)",
            (d["id"], d["product"], d["period"], d["status"], d["answered_at_us"]),
        )
        db.executemany(
            "INSERT INTO disputed_items VALUES (?, ?)", [(d["id"], i) for i in d["items"]]
        )
    db.executemany("INSERT INTO statements VALUES (?)", [(s,) for s in statements])

    def one(sql: str, *args: Any) -> Any:
        return db.execute(sql, args).fetchone()[0]

    window = (now_us - 90 * DAY_US, now_us)
    result = {
        "queries_90d": one("SELECT COUNT(*) FROM queries WHERE at_us >= ? AND at_us < ?", *window),
        "distinct_queriers_90d": one(
            "SELECT COUNT(DISTINCT institution) FROM queries WHERE at_us >= ? AND at_us < ?",
            *window,
        ),
        "last_query_date": one(
            f"SELECT {_CST_DATE.format(col='MAX(at_us)')} FROM queries WHERE at_us < ?", now_us
        ),
        "open_disputes": one("SELECT COUNT(*) FROM disputes WHERE status = 'received'"),
        "disputes_resolved_12m": one(
            "SELECT COUNT(*) FROM disputes WHERE status IN ('corrected', 'confirmed', "
            "'unresolved') AND answered_at_us >= ?",
            now_us - 365 * DAY_US,
        ),
        "disputed_items": one(
            "SELECT COUNT(DISTINCT i.item) FROM disputed_items i JOIN disputes d "
            "ON d.id = i.dispute_id WHERE d.product = ? AND d.period = ? "
            "AND d.status IN ('received', 'unresolved')",
            product,
            period,
        ),
        "has_statement": one("SELECT COUNT(*) > 0 FROM statements"),
        "statement_date": one(f"SELECT {_CST_DATE.format(col='MAX(filed_at_us)')} FROM statements"),
    }
    db.close()
    return result
