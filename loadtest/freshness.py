"""Freshness at a chosen ingest rate, on the embedded stack.

    python -m loadtest.freshness RATE [SECONDS]     # e.g. 10000 30

Publishes generated events at RATE events/s (batch messages, as `make bench` paces them)
while open-loop probes publish an event of their own every 0.25 s and poll the API until it
shows; prints the probes' p50, p99 and max, twice (two phases on the same stack). `make
bench` measures at half its batch rate; this finds the rate a freshness target holds at.
"""

from __future__ import annotations

import sys

from engine.runtime.provision import provision_lender
from engine.runtime.runner import embedded_stack
from engine.settings import Settings
from loadtest.bench import BANKS, events_for, paced_phase, percentile, probe_enterprise

__all__ = ["main"]


def main(argv: list[str]) -> None:
    rate = float(argv[0]) if argv else 10_000.0
    seconds = float(argv[1]) if len(argv) > 1 else 30.0
    per_phase = int(rate * seconds)
    enterprises = max(100, per_phase // 230)  # about 470 events each over 12 months
    load = events_for(7, enterprises, 12)
    with embedded_stack(Settings(), banks=BANKS, split_stages=True) as stack:
        probes = [probe_enterprise(10 + phase) for phase in range(2)]
        lender = provision_lender(stack.settings, "FRESHLND", probes)
        for phase in range(2):
            part = load[phase * per_phase : (phase + 1) * per_phase]
            _, fresh, sent = paced_phase(stack, lender, part, rate, seconds, 10 + phase)
            p50, p99 = percentile(fresh, 0.5), percentile(fresh, 0.99)
            print(
                f"phase {phase + 1}: {sent / seconds:,.0f} events/s published, "
                f"{len(fresh)} probes, p50 {_ms(p50)} ms, p99 {_ms(p99)} ms, "
                f"max {_ms(max(fresh, default=None))} ms",
                flush=True,
            )
            # When the tail happened: probe k was published (k - 1) x 0.25 s into the phase.
            slowest = sorted(range(len(fresh)), key=fresh.__getitem__)[-3:]
            print("  slowest probes: " + ", ".join(f"#{k + 1} {_ms(fresh[k])} ms" for k in slowest))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f}"


if __name__ == "__main__":
    main(sys.argv[1:])
