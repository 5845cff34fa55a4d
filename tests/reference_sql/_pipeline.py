"""From a table of raw events to the relations every item query reads, in SQL (DuckDB).

Python only loads rows: the events as delivered (arrival order kept in ``seq``), the
registry entries of specs/registries.toml and of each reload (with the ``seq`` from which it
classifies: a version classifies the events that arrive while it is current) and the
parameters of specs/products.toml. Every
rule is a view below, written from the README's event contract and the classification rules
that engine/products/classify.py's docstring states:

- ``accepted``: the first event of each (bank, txn_id) stays; redeliveries and conflicting
  duplicates change nothing.
- ``reversals``: an accepted reversal whose target is not itself a reversal; of several
  reversals of one original the first to arrive removes it, the others are rejected.
- ``txn``: the accepted non-reversals that no reversal removes, classified, with their
  China-time (UTC+08:00) day and month (``month`` = year * 12 + month - 1), and whether
  the counterparty is a person (``individual``: its kind, else its id's shape).
- ``periods``: every month and quarter a pull can name, from the enterprise's first
  transaction (or the start of the kept history, if later) to the pull's month (``as_of``).
  ``d0``..``d1`` are its calendar days; ``e1`` the last day that has begun at ``as_of``
  (a partial period's days stop there: later days have no end-of-day balance yet); ``w1``
  the last month of its windows W(n): ``m1``, or the month before the pull's while the
  period is partial (a month not over is not a month without flows).
- ``ptxn``: the transactions of each period.
- ``eod_daily``: per day from the first transaction to the pull's day, the sum over accounts
  with a transaction at or before the end of that day of the balance after their last such
  transaction, ordered by booked_at then txn_id; ``eod``: the same by period (days that
  have begun only); no row on a day before any account's first transaction.
- ``ms``: per enterprise and month, the monthly sums the windows read; ``cpm``:
  each counterparty's monthly inflow and outflow; both over the months on record only
  (``record.r0`` on); ``record``: each enterprise's first month and day (pruned or not)
  and ``r0``, where its record starts.

Pruning (CREDITFLOW_HISTORY_MONTHS) decides which periods are shown and where the record
of windows and earlier quarters starts, never which transactions happened: a balance or a
first transaction stays what the bank booked.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

__all__ = ["SPECS", "connect"]

SPECS = Path(__file__).resolve().parents[2] / "specs"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_SCHEMA = """
CREATE TABLE raw (
    seq BIGINT, bank VARCHAR, txn_id VARCHAR, ent VARCHAR, account VARCHAR,
    booked_at VARCHAR, direction VARCHAR, amount HUGEINT, currency VARCHAR,
    balance HUGEINT, channel VARCHAR, cp VARCHAR, cp_bank VARCHAR, reversal_of VARCHAR,
    cp_kind VARCHAR
);
CREATE TABLE registry (
    from_seq BIGINT, id VARCHAR, class VARCHAR, subtype VARCHAR, bank_code VARCHAR
);
CREATE TABLE params (name VARCHAR, value DOUBLE);
CREATE TABLE clock (as_of_us BIGINT, history_months INTEGER);
-- the signal episodes the workers kept, input of the signal items (closed: null while open)
CREATE TABLE episodes (ent VARCHAR, rule VARCHAR, opened DATE, closed DATE);
"""

_VIEWS = """
-- floor division of integers (DuckDB's // truncates toward zero)
CREATE MACRO fdiv(a, b) AS
    CASE WHEN a % b <> 0 AND ((a < 0) <> (b < 0)) THEN a // b - 1 ELSE a // b END;
CREATE MACRO param(n) AS (SELECT value FROM params WHERE name = n);
CREATE MACRO month_label(m) AS
    printf('%04d-%02d', (m // 12)::INTEGER, (m % 12 + 1)::INTEGER);
CREATE MACRO quarter_label(m) AS
    printf('%04dQ%d', (m // 12)::INTEGER, ((m % 12) // 3 + 1)::INTEGER);
CREATE MACRO month_first_day(m) AS make_date((m // 12)::BIGINT, (m % 12 + 1)::BIGINT, 1);
CREATE MACRO cst_local(us) AS make_timestamp(us + 28800000000::BIGINT);

-- a counterparty is a person when its bank says so (counterparty.kind), else when its id is a
-- resident identity number (GB 11643-1999): 17 digits with a birth date (1900 to 2099) at
-- positions 7 to 14, then the ISO 7064 MOD 11-2 check character over the 17 digits with the
-- weights the standard lists
CREATE MACRO digit(s, i) AS ascii(substr(s, i, 1)) - 48;
CREATE MACRO resident_id(s) AS CASE
    WHEN NOT regexp_full_match(s, '[0-9]{17}[0-9X]') THEN FALSE
    ELSE try_strptime(substr(s, 7, 8), '%Y%m%d') IS NOT NULL
         AND substr(s, 7, 4)::INTEGER BETWEEN 1900 AND 2099
         AND substr('10X98765432', ((
               digit(s, 1) * 7 + digit(s, 2) * 9 + digit(s, 3) * 10 + digit(s, 4) * 5
             + digit(s, 5) * 8 + digit(s, 6) * 4 + digit(s, 7) * 2 + digit(s, 8) * 1
             + digit(s, 9) * 6 + digit(s, 10) * 3 + digit(s, 11) * 7 + digit(s, 12) * 9
             + digit(s, 13) * 10 + digit(s, 14) * 5 + digit(s, 15) * 8 + digit(s, 16) * 4
             + digit(s, 17) * 2
             ) % 11 + 1)::INTEGER, 1) = substr(s, 18, 1)
END;

CREATE VIEW accepted AS
SELECT * FROM raw
QUALIFY row_number() OVER (PARTITION BY bank, txn_id ORDER BY seq) = 1;

CREATE VIEW reversals AS
SELECT r.* FROM accepted r
WHERE r.reversal_of IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM accepted t
      WHERE t.bank = r.bank AND t.txn_id = r.reversal_of AND t.reversal_of IS NOT NULL)
QUALIFY row_number() OVER (PARTITION BY r.bank, r.reversal_of ORDER BY r.seq) = 1;

CREATE VIEW counted AS
SELECT a.*, epoch_us(a.booked_at::TIMESTAMPTZ) AS us FROM accepted a
WHERE a.reversal_of IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM reversals r WHERE r.bank = a.bank AND r.reversal_of = a.txn_id);

-- classes in the order of classify.py's docstring: SELF, CASH, PAYROLL / JUDICIAL,
-- registry (a financial institution of the reporting bank is BANK_OWN), BANK_OWN by id or
-- by the counterparty's bank on loan / interest / fee / margin / bill, TAX and UTILITY by
-- channel, TRADE
CREATE TABLE txn AS
SELECT c.ent, c.bank, c.account, c.txn_id, c.us, c.amount, c.balance, c.channel, c.cp,
       c.direction = 'in' AS inflow,
       coalesce(c.currency, 'CNY') AS currency,
       coalesce(c.currency, 'CNY') <> 'CNY' OR c.channel = 'fx' AS xb,
       coalesce(c.cp_kind = 'individual', resident_id(c.cp)) AS individual,
       cst_local(c.us)::DATE AS day,
       year(cst_local(c.us)) * 12 + month(cst_local(c.us)) - 1 AS month,
       CASE
           WHEN c.cp = c.ent THEN 'SELF'
           WHEN c.channel = 'cash' THEN 'CASH'
           WHEN c.channel = 'payroll' THEN 'PAYROLL'
           WHEN c.channel = 'judicial' THEN 'JUDICIAL'
           WHEN g.id IS NOT NULL AND g.bank_code = c.bank THEN 'BANK_OWN'
           WHEN g.id IS NOT NULL THEN g.class
           WHEN c.cp = c.bank THEN 'BANK_OWN'
           WHEN c.cp_bank = c.bank
                AND c.channel IN ('loan', 'interest', 'fee', 'margin', 'bill') THEN 'BANK_OWN'
           WHEN c.channel = 'tax' THEN 'TAX'
           WHEN c.channel = 'utility' THEN 'UTILITY'
           ELSE 'TRADE'
       END AS cls,
       CASE
           WHEN c.cp = c.ent OR c.channel IN ('cash', 'payroll', 'judicial') THEN ''
           WHEN g.id IS NOT NULL AND g.bank_code = c.bank THEN ''
           WHEN g.id IS NOT NULL THEN coalesce(g.subtype, '')
           WHEN c.cp = c.bank THEN ''
           WHEN c.cp_bank = c.bank
                AND c.channel IN ('loan', 'interest', 'fee', 'margin', 'bill') THEN ''
           WHEN c.channel = 'utility' THEN 'other'
           ELSE ''
       END AS sub
FROM counted c
LEFT JOIN registry g
  ON g.id = c.cp
 AND g.from_seq = (SELECT max(v.from_seq) FROM registry v WHERE v.from_seq <= c.seq);

CREATE TABLE now AS
SELECT as_of_us,
       cst_local(as_of_us)::DATE AS as_of_day,
       year(cst_local(as_of_us)) * 12 + month(cst_local(as_of_us)) - 1 AS as_of_month,
       year(cst_local(as_of_us)) * 12 + month(cst_local(as_of_us)) - history_months
           AS kept_from
FROM clock;

-- where each enterprise's record starts: its first month, or the first kept month when
-- older ones were pruned; a month before it is no month of a window or a base (version 5)
CREATE TABLE record AS
SELECT t.ent, min(t.month) AS first_month, min(t.day) AS first_day,
       greatest(min(t.month), any_value(n.kept_from)) AS r0
FROM txn t, now n GROUP BY t.ent;

CREATE TABLE periods AS
WITH months AS (
    SELECT r.ent, unnest(generate_series(r.r0, n.as_of_month)) AS m FROM record r, now n
), spans AS (
    SELECT DISTINCT ent, 'monthly' AS kind, m AS m0, m AS m1 FROM months
    UNION ALL
    SELECT DISTINCT ent, 'quarterly', m - m % 3, m - m % 3 + 2 FROM months
)
SELECT s.ent, s.kind, s.m0, s.m1, s.m1 - s.m0 + 1 AS n_months, r.r0,
       CASE WHEN s.kind = 'monthly' THEN month_label(s.m0) ELSE quarter_label(s.m0) END
           AS label,
       month_first_day(s.m0) AS d0,
       (month_first_day(s.m1 + 1) - INTERVAL 1 DAY)::DATE AS d1,
       least((month_first_day(s.m1 + 1) - INTERVAL 1 DAY)::DATE, n.as_of_day) AS e1,
       n.as_of_day <= (month_first_day(s.m1 + 1) - INTERVAL 1 DAY)::DATE AS partial,
       -- where W(n) ends: the last month, or before the pull's month while days are to come
       CASE WHEN n.as_of_day <= (month_first_day(s.m1 + 1) - INTERVAL 1 DAY)::DATE
            THEN n.as_of_month - 1 ELSE s.m1 END AS w1
FROM spans s JOIN record r ON r.ent = s.ent, now n
-- a quarter is its three months: not shown when a month of it the firm lived was pruned
WHERE NOT (s.m0 < n.kept_from AND r.first_month < n.kept_from);

CREATE TABLE ptxn AS
SELECT p.label, p.kind, t.*
FROM periods p JOIN txn t ON t.ent = p.ent AND t.month BETWEEN p.m0 AND p.m1;

-- the balance after each account's last booking of a day
CREATE TABLE account_day AS
SELECT ent, bank, account, day, balance FROM txn
QUALIFY row_number() OVER (PARTITION BY ent, bank, account, day ORDER BY us DESC, txn_id DESC) = 1;

-- every day from the enterprise's first transaction to the pull's day, with its balance
CREATE TABLE eod_daily AS
WITH days AS (
    SELECT ent, unnest(generate_series(min(day), any_value(n.as_of_day), INTERVAL 1 DAY))::DATE
        AS day
    FROM txn, now n GROUP BY ent
), grid AS (
    SELECT d.ent, d.day, a.bank, a.account
    FROM days d JOIN (SELECT DISTINCT ent, bank, account FROM txn) a ON a.ent = d.ent
)
SELECT g.ent, g.day, sum(b.balance) AS eod,
       -- an overdraft is one account's: another's credit balance does not net it away
       bool_or(b.balance < 0) AS overdrawn
FROM grid g ASOF JOIN account_day b
  ON b.ent = g.ent AND b.bank = g.bank AND b.account = g.account AND b.day <= g.day
GROUP BY g.ent, g.day;

CREATE TABLE eod AS
SELECT p.ent, p.label, e.day, e.eod, e.overdrawn
FROM periods p JOIN eod_daily e ON e.ent = p.ent AND e.day BETWEEN p.d0 AND p.e1;

-- the quarterly items' windows: every month on record (none before the record starts)
CREATE TABLE ms AS
WITH months AS (
    SELECT p.ent, unnest(generate_series(any_value(r.r0), max(p.m1))) AS month
    FROM periods p JOIN record r ON r.ent = p.ent GROUP BY p.ent
)
SELECT m.ent, m.month,
       coalesce(sum(t.amount) FILTER (WHERE t.inflow), 0) AS in_all,
       coalesce(sum(t.amount) FILTER (WHERE NOT t.inflow), 0) AS out_all,
       coalesce(sum(t.amount) FILTER (
           WHERE t.inflow AND t.cls IN ('TRADE', 'PSP', 'CASH')), 0) AS op_in,
       coalesce(sum(t.amount) FILTER (
           WHERE NOT t.inflow AND t.cls IN ('TRADE', 'PAYROLL', 'UTILITY', 'TAX', 'SOCIAL',
                                            'GOV_OTHER', 'PSP', 'CASH')), 0) AS op_out,
       coalesce(sum(t.amount) FILTER (WHERE NOT t.inflow AND t.cls = 'UTILITY'), 0) AS util_out,
       coalesce(sum(t.amount) FILTER (
           WHERE NOT t.inflow AND t.cls = 'UTILITY' AND t.sub = 'power'), 0) AS power_out,
       coalesce(sum(t.amount) FILTER (
           WHERE NOT t.inflow AND t.cls = 'UTILITY' AND t.sub = 'water'), 0) AS water_out,
       coalesce(sum(t.amount) FILTER (
           WHERE NOT t.inflow AND t.cls = 'UTILITY' AND t.sub = 'gas'), 0) AS gas_out,
       coalesce(sum(t.amount) FILTER (WHERE NOT t.inflow AND t.cls = 'TAX'), 0) AS tax_out,
       coalesce(sum(t.amount) FILTER (WHERE NOT t.inflow AND t.cls = 'SOCIAL'), 0) AS social_out,
       coalesce(sum(t.amount) FILTER (
           WHERE NOT t.inflow AND t.cls = 'SOCIAL' AND t.sub = 'social_insurance'), 0) AS si_out,
       coalesce(sum(t.amount) FILTER (WHERE NOT t.inflow AND t.cls = 'PAYROLL'), 0)
           AS payroll_out,
       coalesce(sum(t.amount) FILTER (WHERE NOT t.inflow AND t.cls = 'JUDICIAL'), 0)
           AS judicial_out,
       coalesce(sum(t.amount) FILTER (
           WHERE t.inflow AND t.cls = 'BANK_OWN' AND t.channel = 'loan'), 0) AS loan_in,
       coalesce(sum(t.amount) FILTER (
           WHERE NOT t.inflow AND t.cls = 'BANK_OWN' AND t.channel = 'loan'), 0) AS loan_out,
       coalesce(sum(t.amount) FILTER (
           WHERE NOT t.inflow AND t.cls = 'BANK_OWN' AND t.channel = 'interest'), 0)
           AS interest_out,
       coalesce(sum(t.amount) FILTER (
           WHERE NOT t.inflow AND t.cls = 'FIN_PARTNER'
             AND t.sub IN ('bank', 'lender', 'lessor', 'factor')), 0) AS lend_out,
       count(t.txn_id) AS n
FROM months m LEFT JOIN txn t ON t.ent = m.ent AND t.month = m.month
GROUP BY m.ent, m.month;

-- each counterparty's inflow and outflow by month (class as classified)
CREATE TABLE cpm AS
SELECT ent, month, cp, cls,
       coalesce(sum(amount) FILTER (WHERE inflow), 0) AS cp_in,
       coalesce(sum(amount) FILTER (WHERE NOT inflow), 0) AS cp_out
FROM txn t WHERE cp <> ent
  AND month >= (SELECT r.r0 FROM record r WHERE r.ent = t.ent)  -- on record only
GROUP BY ent, month, cp, cls;

CREATE VIEW quarters AS SELECT * FROM periods WHERE kind = 'quarterly';
"""


def connect(
    events: Iterable[Mapping[str, Any]],
    as_of: datetime,
    history_months: int,
    registries: Sequence[tuple[int, Mapping[str, Any]]] = (),
    episodes: Mapping[str, Iterable[tuple[str, date, date | None]]] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A database holding the events as delivered, the signal episodes (enterprise ->
    (rule, opened, closed or None)) and every view the items read.

    ``registries``: reloads, each (the arrival index from which it classifies, the
    registries document); before the first, specs/registries.toml classifies."""
    db = duckdb.connect(":memory:")
    db.execute(_SCHEMA)
    rows = [
        (
            seq,
            e["bank"],
            e["txn_id"],
            e["enterprise_id"],
            e["account"],
            e["booked_at"],
            e["direction"],
            e["amount_fen"],
            e.get("currency"),
            e["balance_after_fen"],
            e["channel"],
            e["counterparty"]["id"],
            e["counterparty"].get("bank"),
            e.get("reversal_of"),
            e["counterparty"].get("kind"),
        )
        for seq, e in enumerate(events)
    ]
    row = "(" + ", ".join("?" * 15) + ")"
    for start in range(0, len(rows), 200):  # one statement per 200 rows: executemany is slow
        chunk = rows[start : start + 200]
        db.execute(
            "INSERT INTO raw VALUES " + ", ".join([row] * len(chunk)),
            [value for r in chunk for value in r],
        )
    with (SPECS / "registries.toml").open("rb") as handle:
        versions = [(0, tomllib.load(handle)), *registries]
    db.executemany(
        "INSERT INTO registry VALUES (?, ?, ?, ?, ?)",
        [
            (from_seq, e["id"], e["class"], e.get("subtype"), e.get("bank_code"))
            for from_seq, doc in versions
            for e in doc["entries"]
        ],
    )
    with (SPECS / "products.toml").open("rb") as handle:
        parameters = tomllib.load(handle)["parameters"]
    db.executemany("INSERT INTO params VALUES (?, ?)", list(parameters.items()))
    as_of_us = (as_of - _EPOCH) // timedelta(microseconds=1)
    db.execute("INSERT INTO clock VALUES (?, ?)", [as_of_us, history_months])
    kept = [(e, *episode) for e, of_e in (episodes or {}).items() for episode in of_e]
    if kept:
        db.executemany("INSERT INTO episodes VALUES (?, ?, ?, ?)", kept)
    db.execute(_VIEWS)
    return db
