"""`creditflow status`: is it behind, and where? For a person, or as JSON for a script."""

from __future__ import annotations

import sys

from engine import codec
from engine.runtime.status import Status, collect_status
from engine.settings import Settings

__all__ = ["run_status"]


def run_status(settings: Settings, as_json: bool) -> int:
    """Print the status; 1 when the broker or Redis did not answer, else 0."""
    status = collect_status(settings)
    if as_json:
        sys.stdout.write(codec.dumps(status.as_json()).decode() + "\n")
    else:
        sys.stdout.write(render(status))
    if not status.ok:
        down = [
            f"{name} does not answer ({error})"
            for name, error in (("the broker", status.broker_error), ("Redis", status.redis_error))
            if error is not None
        ]
        print(f"creditflow status: {'; '.join(down)}", file=sys.stderr)
        return 1
    return 0


def render(status: Status) -> str:
    """The status as lines for a person: one per stage and partition."""
    now = status.checked_at
    lines = [
        f"checked at {now.isoformat(timespec='seconds')}",
        f"broker  {'answers' if status.broker_error is None else 'DOES NOT ANSWER'}",
        f"redis   {'answers' if status.redis_error is None else 'DOES NOT ANSWER'}",
    ]
    if status.partitions:
        lines.append(
            f"{'stage':<7} {'topic':<28} {'part':>4} {'applied':>10} {'end':>10} {'lag':>8}"
            "  watermark (freshness)"
        )
    for p in status.partitions:
        applied = "?" if p.applied_offset is None else str(p.applied_offset)
        end = "?" if p.end_offset is None else str(p.end_offset)
        lag = "?" if p.lag is None else str(p.lag)
        line = f"{p.stage:<7} {p.topic:<28} {p.partition:>4} {applied:>10} {end:>10} {lag:>8}"
        if p.watermark is not None:
            line += f"  {p.watermark} ({_age(p.freshness_seconds(now))} old)"
        if p.source == "group":
            line += "  (group's committed offset)"
        lines.append(line.rstrip())
    if status.rejects is None:
        lines.append("rejects in the last hour: unknown (the broker did not answer)")
    else:
        by_reason = ", ".join(f"{k}={v}" for k, v in sorted(status.rejects.items()))
        lines.append(f"rejects in the last hour: {by_reason or 'none'}")
    return "\n".join(lines) + "\n"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.0f} d"
