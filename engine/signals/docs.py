"""docs/signals.md, generated from specs/signals.toml by ``creditflow docs``."""

from __future__ import annotations

import json
from pathlib import Path

from engine.products.docs import table_cell, write_doc
from engine.signals.spec import SIGNALS_SPEC, RuleSpec, load_signals

__all__ = ["SIGNALS_DOC", "render_signals_doc", "write_signals_doc"]

SIGNALS_DOC = SIGNALS_SPEC.parent.parent / "docs" / "signals.md"
#: Written by `make backtest` (loadtest/backtest.py); its table is part of the doc.
BACKTEST_RESULT = SIGNALS_SPEC.parent.parent / "loadtest" / "results" / "backtest.json"

_INTRO = """\
Generated from [`specs/signals.toml`](../specs/signals.toml) by `creditflow docs`; do not edit
by hand. How a rule is judged (the as-of day D, runs and episodes, windows that never count
days before the firm's first one) is explained at the top of that file.

A signal is an episode: `raised` on the first evaluation that finds its rule holding, then
`cleared` when the rule stops holding, or `retracted` when a late event or a reversal shows
it never held on the day the episode started. Its id is a hash of (enterprise, rule, start
day), and the start day is a fact of the data: evaluating the same data again, after a
replay, a restart or a rebalance, names the same episode and emits nothing.

**How they run.** The rules marked *evaluated* are pure functions over the months the workers
keep (`engine/signals/rules.py`), checked against a naive reference written from these
definitions (`tests/reference/signals.py`). A worker judges an enterprise's rules after a
commit changes its state and, for every enterprise, when the day changes (China time); a
partition replaying its log judges nothing until it is live again. An enterprise is judged
once its changes pause (0.3 s, and at the latest 5 s after the first; 10 s for changes
only to months before the last, history arriving), so that a bank's backfill of a firm's
history raises nothing it would retract; a lone change to the current months, of a firm
that had not changed for 0.3 s, is judged at once.
Judging takes at most about a third of a worker's time: under more load, signals come
later (`creditflow_signals_pending_enterprises`), the enterprises waiting judged in the
order their changes were committed, and ingest does not slow. The rules on loan
proceeds and judicial deductions read the month state's *marks*, kept by day since spec
version 3 (loans received; money to individuals, to the firm's own accounts, to lenders;
judicial deductions): months written by an earlier version have none until their partition
is rebuilt from the routed topic. Who is an individual comes from the event's
`counterparty.kind`, else from the id's shape (a resident identity number): a bank that
identifies persons by account number must send the kind. The rules on counterparties (new
financing partners, the largest customer) read complete months: the state keeps each month's
flows by counterparty, not their days. A deployment tunes parameters in its own copy of the
spec (`CREDITFLOW_SIGNAL_RULES_PATH`).

**The signal record.** Each transition is one JSON message on the Kafka topic
`credit.signals`, keyed by enterprise: `id` (the episode's), `enterprise_id`, `rule`,
`severity`, `state` (`raised`, `cleared`, `retracted`), `date` (the episode's first day),
`evidence` (as of when it was raised), `raised_at` (the start of that day, China time: event
time), `emitted_at` (when the worker published it) and `as_of` (the day judged).

**Delivery.** An institution with the `user` role (and `provider` while reciprocity is
required) receives an enterprise's signals while it holds an active authorization of it with
the purpose `post_loan_monitoring`: `GET /v1/signals?since=<cursor>&limit=` answers
`{"signals": [...], "next": "<cursor>"}`, oldest first; `GET /v1/signals/stream` sends them
as server-sent events (`event: signal`, `id:` the cursor), resumable with `Last-Event-ID` (or
`?since=`; without either, new signals only). An institution granted monitoring of a firm
is given its open episodes at once (their `raised` signals), then every transition. A
revoked or expired authorization stops delivery at once, also of signals already waiting.
Each answer that delivers signals writes one query record per enterprise (product
`signals`), durable before the signals leave. Feeds keep `CREDITFLOW_SIGNAL_RETENTION_DAYS`
(90) days.

**Not built yet:** account freezes that move no money (not a transaction of the contract),
signals in the quarterly report's flags. How well the evaluated rules warn, and how often
they cry wolf: the backtest at the end.
"""


_BACKTEST_READING = """\
Where the rules fall short of recall 0.9 and precision 0.8, and why:

- `operating_inflow_collapse` on a firm younger than a year has no same window last year to
  compare with; against its trailing level the Spring Festival dip looks like a collapse
  (every false alarm above). Lenders should read its `level_basis`: `trailing_180_days` is
  the weaker evidence.
- `account_overdrawn` and `balance_cover_low` see a cash squeeze only once the buffer is
  spent: a firm holding three months of receipts can fail before it runs short (the
  recall). A healthy firm paid in a few large sums, or one that spends most of its cash at
  once, runs short between receipts (most false alarms): balances alone cannot tell a firm
  waiting for its next contract from one that will not get it. The inflow and payment rules
  warn of the same failures earlier and more surely.
- `recurring_payment_lapsed` reads complete months (the state keeps a month's flows by
  class, not their days): it warns only once a whole month has gone by without the
  payment, and it clears only once the month of the next payment is complete.
- `largest_customer_stopped` and `financing_partner_stacking` read complete months too: a
  customer that stopped is seen 40 to 70 days after its last payment, new lenders once the
  month of the third is over. A customer paying in 4 of 6 months made a regular one at
  first, and firms paid by project raised 14 false alarms; 5 of 6 raise none.
- `financing_partner_stacking` is perfect here because no generated healthy firm takes
  three new lenders within a quarter; a growing firm that taps supply-chain finance from
  several factors at once would be one, and the rule cannot tell kinds of partners apart
  until the products classify them (issue 15's partners by kind).
- `fast_in_fast_out` tells a conduit from a firm by its balances alone: money that came
  into empty accounts and left them empty by the next day. The generated healthy firms all
  keep a buffer, so its precision here says nothing about a healthy firm living from hand
  to mouth on a small positive balance, which it would flag; where the money went is
  `loan_proceeds_diverted`'s to judge, for loans. A first definition that counted negative
  balances as empty raised 214 false alarms on such firms, which are often overdrawn.
- `loan_proceeds_diverted` and `judicial_deduction` are perfect on scenarios made for them:
  a diverting firm sends 60 to 90 % of a loan the same day to its owner, its own account
  elsewhere or another lender; the healthy one renews a loan with its lender, buys
  equipment and pays its owner a monthly dividend and a court fee. A healthy firm that
  moves a loan to its own account at another bank to pay suppliers from there would be
  flagged (the rule cannot follow money across the firm's banks by day), and so would one
  paying a large dividend days after a loan. At CNY 50,000 `min_loan_fen` missed the third
  of the diverting firms whose loans were smaller; CNY 10,000 misses none.
- The figures move by several points between seeds at 50 firms a scenario; the test of a
  change to a rule is the same seed before and after.
"""


def _rule(rule: RuleSpec) -> list[str]:
    status = "evaluated" if rule.evaluated else "planned: raises nothing yet"
    lines = [
        f"## {rule.name_zh} / {rule.name_en}",
        "",
        f"`{rule.id}`: {rule.severity.value}, {status}.",
        "",
        rule.definition,
        "",
        f"Clears: {rule.clears}",
        "",
        "Evidence: " + ", ".join(f"`{field}`" for field in rule.evidence) + ".",
        "",
    ]
    if rule.parameters:
        lines += ["| parameter | default | unit | meaning |", "|---|---|---|---|"]
        for name, p in rule.parameters.items():
            default = int(p.default) if p.default.is_integer() else p.default
            lines.append(f"| `{name}` | {default} | {p.unit} | {table_cell(p.description)} |")
        lines.append("")
    return lines


def _backtest(path: Path) -> list[str]:
    """The table of the last `make backtest`, as it was committed."""
    if not path.exists():
        return []
    result = json.loads(path.read_text(encoding="utf-8"))
    lines = [
        "## Backtest: does it warn, and does it cry wolf?",
        "",
        f"`make backtest` ({result['firms_per_scenario']} firms per scenario, seed "
        f"{result['seed']}; {result['judged']}): the evaluated rules over generated firms "
        "that fail (inflows stop, revenue collapses, a cash squeeze) and healthy ones "
        "(strong seasonality, a young seasonal firm, growth, lumpy contracts, a one-off "
        "payment, stable), run through the workers' own path. A true warning is an episode "
        "raised on a failing firm between its trouble and its failure; any other is a false "
        "alarm. Precision: true warnings over all episodes raised. Recall: the share of the "
        "rule's own failing firms warned before they fail. Lead: median days from the first "
        "true warning to the failure. How the firms are made: `loadtest/backtest.py`.",
        "",
        "| rule | its scenarios | precision | recall | median lead (days) "
        "| false alarms by scenario |",
        "|---|---|---|---|---|---|",
    ]
    for rule, s in result["rules"].items():
        alarms = ", ".join(f"{k} {v}" for k, v in s["false_alarms_by_scenario"].items())
        lines.append(
            f"| `{rule}` | {', '.join(s['scenarios'])} | {_figure(s['precision'])} | "
            f"{_figure(s['recall'])} | {_figure(s['median_lead_days'])} | {alarms or '-'} |"
        )
    return [*lines, "", _BACKTEST_READING, ""]


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def render_signals_doc(backtest: Path = BACKTEST_RESULT) -> str:
    spec = load_signals()
    lines = ["# Credit signals", "", _INTRO, f"Spec version {spec.version}.", ""]
    for rule in spec.rules.values():
        lines.extend(_rule(rule))
    lines.extend(_backtest(backtest))
    return "\n".join(lines).rstrip() + "\n"


def write_signals_doc(path: Path = SIGNALS_DOC) -> Path:
    return write_doc(path, render_signals_doc())
