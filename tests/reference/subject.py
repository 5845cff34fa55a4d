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
CREATE TABLE pull (request_id TEXT, at_us INTEGER, institution TEXT, purpose TEXT,
                   watermark TEXT);
CREATE TABLE queries (at_us INTEGER, institution TEXT, purpose TEXT);
CREATE TABLE disputes (id TEXT, product TEXT, period TEXT, status TEXT, answered_at_us INTEGER);
CREATE TABLE disputed_items (dispute_id TEXT, item TEXT);
CREATE TABLE statements (filed_at_us INTEGER);
"""

_CST_DATE = "date(({col}) / 1000000 + 8 * 3600, 'unixepoch')"
# RFC 3339 in China time, microseconds shown when there are any (as Python's isoformat does)
_CST_INSTANT = (
    "strftime('%Y-%m-%dT%H:%M:%S', ({col}) / 1000000 + 8 * 3600, 'unixepoch') "
    "|| CASE WHEN ({col}) % 1000000 = 0 THEN '' "
    "ELSE printf('.%06d', ({col}) % 1000000) END || '+08:00'"
)


def subject_items(
    now_us: int,
    product: str,
    period: str,
    queries: Iterable[tuple[int, str, str | None]] = (),
    disputes: Iterable[dict[str, Any]] = (),
    statements: Iterable[int] = (),
    pull: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None),
) -> dict[str, Any]:
    """``queries``: (at_us, institution, purpose) of answered queries by institutions;
    ``disputes``: dicts with id, product, period, status, answered_at_us, items;
    ``statements``: filing times; ``pull``: (request id, institution, purpose, watermark) of
    the request the report answers."""
    db = sqlite3.connect(":memory:")
    db.executescript(_SCHEMA)
    db.execute("INSERT INTO pull VALUES (?, ?, ?, ?, ?)", (pull[0], now_us, *pull[1:]))
    db.executemany("INSERT INTO queries VALUES (?, ?, ?)", list(queries))
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
    credit = "purpose = 'credit_application' AND at_us >= ? AND at_us < ?"
    result = {
        "report_id": one("SELECT request_id FROM pull"),
        "generated_at": one(f"SELECT {_CST_INSTANT.format(col='at_us')} FROM pull"),
        "data_as_of": one("SELECT watermark FROM pull"),
        "querying_institution": one("SELECT institution FROM pull"),
        "query_purpose": one("SELECT purpose FROM pull"),
        "queries_90d": one("SELECT COUNT(*) FROM queries WHERE at_us >= ? AND at_us < ?", *window),
        "distinct_queriers_90d": one(
            "SELECT COUNT(DISTINCT institution) FROM queries WHERE at_us >= ? AND at_us < ?",
            *window,
        ),
        "last_query_date": one(
            f"SELECT {_CST_DATE.format(col='MAX(at_us)')} FROM queries WHERE at_us < ?", now_us
        ),
        "credit_application_queries_90d": one(
            f"SELECT COUNT(*) FROM queries WHERE {credit}", *window
        ),
        "credit_application_queriers_30d": one(
            f"SELECT COUNT(DISTINCT institution) FROM queries WHERE {credit}",
            now_us - 30 * DAY_US,
            now_us,
        ),
        "open_disputes": one("SELECT COUNT(*) FROM disputes WHERE status = 'received'"),
        "disputed_items": one(
            "SELECT COUNT(DISTINCT i.item) FROM disputed_items i JOIN disputes d "
            "ON d.id = i.dispute_id WHERE d.product = ? AND d.period = ? "
            "AND d.status IN ('received', 'unresolved')",
            product,
            period,
        ),
        "statement_date": one(f"SELECT {_CST_DATE.format(col='MAX(filed_at_us)')} FROM statements"),
    }
    db.close()
    return result
