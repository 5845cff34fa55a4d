"""specs/signals.toml, loaded and checked: the rules a lender can subscribe to."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from engine.errors import SpecError

__all__ = ["SIGNALS_SPEC", "RuleSpec", "Severity", "SignalSpec", "load_signals"]

SIGNALS_SPEC = Path(__file__).resolve().parents[2] / "specs" / "signals.toml"
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{2,47}$")


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Parameter:
    default: float
    unit: str
    description: str


@dataclass(frozen=True, slots=True)
class RuleSpec:
    id: str
    name_zh: str
    name_en: str
    severity: Severity
    evaluated: bool  # False: declared ("planned"), raised by nothing yet
    definition: str
    evidence: tuple[str, ...]
    clears: str
    parameters: dict[str, Parameter]

    def values(self, overrides: dict[str, float] | None = None) -> dict[str, float]:
        """The parameters' values: the defaults, with a deployment's ``overrides``."""
        values = {name: p.default for name, p in self.parameters.items()}
        for name, value in (overrides or {}).items():
            if name not in values:
                raise SpecError(f"rule {self.id} has no parameter {name!r}")
            values[name] = value
        return values


@dataclass(frozen=True, slots=True)
class SignalSpec:
    version: int
    rules: dict[str, RuleSpec]


@cache
def load_signals(path: Path = SIGNALS_SPEC) -> SignalSpec:
    """The spec, checked; SpecError names the first problem."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from exc
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise SpecError(f"{path}: version must be a positive integer")
    rules: dict[str, RuleSpec] = {}
    for raw in doc.get("rules", []):
        rule = _rule(raw)
        if rule.id in rules:
            raise SpecError(f"rule {rule.id} is declared twice")
        rules[rule.id] = rule
    if not rules:
        raise SpecError(f"{path}: no rules")
    return SignalSpec(version, rules)


def _rule(raw: dict[str, Any]) -> RuleSpec:
    rule_id = raw.get("id", "")
    if not isinstance(rule_id, str) or not _ID_RE.match(rule_id):
        raise SpecError(f"rule id {rule_id!r} must match {_ID_RE.pattern}")
    for key in ("name_zh", "name_en", "definition", "clears"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise SpecError(f"rule {rule_id}: {key} is required")
    try:
        severity = Severity(str(raw.get("severity")))
    except ValueError:
        raise SpecError(f"rule {rule_id}: severity must be info, warning or critical") from None
    status = raw.get("status")
    if status not in ("evaluated", "planned"):
        raise SpecError(f"rule {rule_id}: status must be 'evaluated' or 'planned'")
    evidence = raw.get("evidence")
    if (
        not isinstance(evidence, list)
        or not evidence
        or not all(isinstance(e, str) for e in evidence)
    ):
        raise SpecError(f"rule {rule_id}: evidence must list the fields a signal reports")
    parameters = {}
    for name, p in (raw.get("parameters") or {}).items():
        if not isinstance(p.get("default"), int | float) or isinstance(p.get("default"), bool):
            raise SpecError(f"rule {rule_id}: parameter {name} needs a numeric default")
        parameters[name] = Parameter(float(p["default"]), str(p["unit"]), str(p["description"]))
    for name in re.findall(r"`([a-z_]+)`", raw["definition"] + " " + raw["clears"]):
        if name not in parameters:
            raise SpecError(f"rule {rule_id}: the definition names `{name}`, no parameter")
    return RuleSpec(
        rule_id,
        raw["name_zh"],
        raw["name_en"],
        severity,
        status == "evaluated",
        raw["definition"],
        tuple(evidence),
        raw["clears"],
        parameters,
    )
