"""What the PromQL of deploy/ reads, and what engine/metrics.py declares: for the tests of
the alerting rules and of the Grafana dashboard, which may name only metrics and labels the
engine exports."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES_FILE = ROOT / "deploy" / "prometheus" / "rules.yml"
DASHBOARD_FILE = ROOT / "deploy" / "grafana" / "dashboards" / "creditflow.json"
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
# Prometheus's own series an expression may read besides creditflow's.
PROMETHEUS_SERIES = {"up": set[str]()}


def declared_metrics() -> dict[str, set[str]]:
    """Every series name engine/metrics.py declares, with its label names (read from the
    source: a metric must be declared there, not merely exist somewhere)."""
    tree = ast.parse((ROOT / "engine" / "metrics.py").read_text())
    series: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"Counter", "Gauge", "Histogram"}
        ):
            continue
        name = ast.literal_eval(node.args[0])
        labels = set(ast.literal_eval(node.args[2])) if len(node.args) > 2 else set()
        if node.func.id == "Histogram":
            series |= {f"{name}_bucket": labels | {"le"}, f"{name}_count": labels}
            series[f"{name}_sum"] = labels
        else:
            series[name] = labels  # a counter's name already ends in _total
    return series


_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left"}
_KEYWORDS |= {"group_right", "bool", "offset"}


def series_names(expr: str) -> set[str]:
    """The metric and recording-rule names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)  # matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)\s*(\(?)", expr):
        if not match.group(2) and match.group(1) not in _KEYWORDS:
            names.add(match.group(1))
    return names


def matchers(expr: str) -> list[tuple[str, set[str]]]:
    """Each selector's metric name and the label names it matches on."""
    found = []
    for match in re.finditer(r"(?<![\w:])([A-Za-z_][\w]*)\s*\{([^}]*)\}", expr):
        labels = set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", match.group(2)))
        found.append((match.group(1), labels))
    return found


def unknown_names(expr: str, recorded: set[str]) -> list[str]:
    """What ``expr`` reads that neither the engine, Prometheus nor a recording rule of
    ``recorded`` provides: series, matched labels, grouping labels. Empty when it is sound."""
    declared = {**declared_metrics(), **PROMETHEUS_SERIES}
    names = series_names(expr)
    problems = [f"reads nothing: {expr}"] if not names else []
    problems += [
        f"no series {name}" for name in names if name not in declared and name not in recorded
    ]
    for name, labels in matchers(expr):
        extra = labels - declared.get(name, set()) - TARGET_LABELS
        problems += [f"no label {label} on {name}" for label in extra]
    read = set().union(*(declared.get(name, set()) for name in names))
    for grouping in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
        for label in re.findall(r"\w+", grouping):
            # a recording rule keeps the labels it grouped by: only those are named here
            if label not in read | TARGET_LABELS and not names & recorded:
                problems.append(f"no label {label} to group by")
    return problems


def recorded_names() -> set[str]:
    """The series the recording rules of deploy/prometheus/rules.yml write."""
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel of the Grafana dashboard that shows data (rows left out, their panels in)."""
    found: list[dict[str, Any]] = []
    for panel in json.loads(DASHBOARD_FILE.read_text())["panels"]:
        if panel["type"] == "row":
            found += panel.get("panels", [])  # a collapsed row holds its panels
        else:
            found.append(panel)
    return found


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the dashboard, with Grafana's variables in it."""
    return [(p["title"], t["expr"]) for p in dashboard_panels() for t in p["targets"]]
