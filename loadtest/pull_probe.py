"""Pull latency and each process's CPU, on the embedded stack, in a minute.

    python -m loadtest.pull_probe [RATE] [SECONDS] [INGEST]     # e.g. 2000 30 15000

Ingests 1,000 enterprises x 3 months, authorizes a lender for them, then pulls their monthly
products at RATE/s for SECONDS (the bench's pull client, `loadtest/pulls.py`) while INGEST
events/s of new enterprises are published (0: none). Prints the pull figures and the CPU
each process used, in cores, over the pulls. The API runs at real-time priority as in
`make bench`; settings come from the environment (e.g. CREDITFLOW_API_JOURNAL_FSYNC=true).
`make bench` is the reference; this answers "what did that change do to a pull" quickly.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

from engine import codec
from engine.runtime.provision import authorize, provision_lender
from engine.runtime.runner import embedded_stack
from engine.settings import Settings
from loadtest.bench import BANKS, events_for, ingest_batches, paced, run_pull_client

__all__ = ["main"]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> None:
    rate = float(argv[0]) if argv else 2000.0
    seconds = float(argv[1]) if len(argv) > 1 else 30.0
    ingest = float(argv[2]) if len(argv) > 2 else 15_000.0
    settings = Settings().model_copy(
        update={"api_realtime_priority": 10, "api_institution_rate_limit": "1000000/second"}
    )
    with embedded_stack(settings, banks=BANKS, split_stages=True) as stack:
        lender = provision_lender(stack.settings, "PROBELND")
        events = events_for(1, 1000, 3)
        ingest_batches(stack, events)
        enterprises = sorted({e["enterprise_id"] for e in events})
        random.Random(5).shuffle(enterprises)  # popularity order for the Zipf skew
        authorize(stack.settings, lender, enterprises)
        month = events[-1]["booked_at"][:7]
        urls = [stack.api_url + lender.path(e, "monthly", month) for e in enterprises]
        pids = {child.name: child.process.pid for child in stack.stack.children}
        stop = threading.Event()
        published = [0]
        if ingest:
            load = iter(events_for(7, 2000, 12))
            threading.Thread(
                target=lambda: published.__setitem__(0, paced(stack, load, ingest, stop)),
                daemon=True,
            ).start()
        before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        figures = run_pull_client(urls, rate, seconds, lender.headers)
        elapsed = time.monotonic() - started
        stop.set()
        cores = {
            name: round((_cpu_seconds(pid) - before[name]) / elapsed, 3)
            for name, pid in pids.items()
        }
    time.sleep(0.5)  # the publisher thread's count
    report = {
        **figures,
        "ingest_asked_per_s": ingest,
        "ingest_published_per_s": round(published[0] / elapsed),
        "cores": cores,
    }
    print(codec.dumps(report).decode())


if __name__ == "__main__":
    main(sys.argv[1:])
