"""Freshness and signal latency at a chosen ingest rate, on the embedded stack.

    python -m loadtest.freshness RATE [SECONDS]     # e.g. 10000 30

Publishes generated events at RATE events/s (batch messages, as `make bench` paces them)
while open-loop probes publish an event of their own every 0.25 s and poll the API until it
shows, and signal probes (loadtest/signal_probe.py) raise a signal every 0.5 s that a
monitoring lender polls for; prints the p50, p99 and max of both, twice (two phases on the
same stack). `make bench` measures at half its batch rate; this finds the rate a target
holds at.
"""

from __future__ import annotations

import random
import sys

from engine.events.credit_code import generate as generate_code
from engine.runtime.provision import provision_lender
from engine.runtime.runner import embedded_stack
from engine.settings import Settings
from loadtest.bench import BANKS, events_for, paced_phase, percentile, probe_enterprise
from loadtest.signal_probe import PROBE_INTERVAL_SECONDS as SIGNAL_PROBE_SECONDS
from loadtest.signal_probe import SignalProbes

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
        per_probe_phase = int(seconds / SIGNAL_PROBE_SECONDS) + 1
        signal_probes = [  # enterprises of their own each phase: a probe raises once
            SignalProbes(
                stack,
                [
                    generate_code(random.Random(f"signal-probe-{phase}-{k}"))
                    for k in range(per_probe_phase)
                ],
                BANKS[0],
                f"SIGPROBE{phase}",
            )
            for phase in range(2)
        ]
        for phase in range(2):
            part = load[phase * per_phase : (phase + 1) * per_phase]
            latencies: list[float] = []
            _, fresh, sent = paced_phase(
                stack,
                lender,
                part,
                rate,
                seconds,
                10 + phase,
                signals=(signal_probes[phase], latencies),
            )
            p50, p99 = percentile(fresh, 0.5), percentile(fresh, 0.99)
            print(
                f"phase {phase + 1}: {sent / seconds:,.0f} events/s published, "
                f"{len(fresh)} probes, p50 {_ms(p50)} ms, p99 {_ms(p99)} ms, "
                f"max {_ms(max(fresh, default=None))} ms; {len(latencies)} signals, "
                f"p50 {_ms(percentile(latencies, 0.5))} ms, "
                f"p99 {_ms(percentile(latencies, 0.99))} ms",
                flush=True,
            )
            # When the tail happened: probe k was published (k - 1) x 0.25 s into the phase.
            slowest = sorted(range(len(fresh)), key=fresh.__getitem__)[-3:]
            print("  slowest probes: " + ", ".join(f"#{k + 1} {_ms(fresh[k])} ms" for k in slowest))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f}"


if __name__ == "__main__":
    main(sys.argv[1:])
