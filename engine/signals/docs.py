"""docs/signals.md, generated from specs/signals.toml by ``creditflow docs``."""

from __future__ import annotations

from pathlib import Path

from engine.products.docs import table_cell, write_doc
from engine.signals.spec import SIGNALS_SPEC, RuleSpec, load_signals

__all__ = ["SIGNALS_DOC", "render_signals_doc", "write_signals_doc"]

SIGNALS_DOC = SIGNALS_SPEC.parent.parent / "docs" / "signals.md"

_INTRO = """\
Generated from [`specs/signals.toml`](../specs/signals.toml) by `creditflow docs`; do not edit
by hand. How a rule is judged (the as-of day D, runs and episodes, windows that never count
days before the firm's first one) is explained at the top of that file.

A signal is an episode: `raised` on the first evaluation that finds its rule holding, then
`cleared` when the rule stops holding, or `retracted` when a late event or a reversal shows
it never held on the day the episode started. Its id is a hash of (enterprise, rule, start
day), and the start day is a fact of the data: evaluating the same data again, after a
replay, a restart or a rebalance, names the same episode and emits nothing.

**Where this stands (issue 16).** The rules marked *evaluated* are implemented as pure
functions over the months the workers keep (`engine/signals/rules.py`) and checked against a
naive reference written from these definitions (`tests/reference/signals.py`, on generated
firm histories); episodes and their transitions are in `engine/signals/episodes.py`. Not yet
built: running them in the workers as partitions commit and as time passes, the
`credit.signals` topic, delivery to authorized institutions, the backtest. Rules marked
*planned* need state the workers do not keep yet (flows per day by class, the counterparty's
kind, judicial deductions as a class) and raise nothing.
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


def render_signals_doc() -> str:
    spec = load_signals()
    lines = ["# Credit signals", "", _INTRO, f"Spec version {spec.version}.", ""]
    for rule in spec.rules.values():
        lines.extend(_rule(rule))
    return "\n".join(lines).rstrip() + "\n"


def write_signals_doc(path: Path = SIGNALS_DOC) -> Path:
    return write_doc(path, render_signals_doc())
