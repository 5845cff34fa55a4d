"""A debug hook of loadtest/memory.py: where the ledger worker's memory is. Off by default.

Python imports ``sitecustomize`` at start-up from its path; only ``python -m loadtest.memory
--trace`` puts this directory on the children's PYTHONPATH, with MEMTRACE_FILE set. The
ledger worker (``creditflow worker`` with CREDITFLOW_WORKER_STAGES=ledger) then appends a
JSON line to that file every MEMTRACE_SECONDS (15; 5 with allocations), from
MEMTRACE_DELAY_SECONDS (30) after it starts: its RSS and

- by default, the deep size of its caches and buffers, found among the live objects, and
  pymalloc's arenas (bytes in live small-object blocks, and free blocks it cannot give
  back); the walk holds the interpreter for a second or two and allocates while it counts;
- with MEMTRACE_MODE=allocations, tracemalloc's largest allocation sites since the start of
  tracing (by library line and by creditflow line): native memory (RocksDB, the
  allocator's free lists) is RSS less the traced total. Tracing slows the worker about
  twice (and from the start, its imports past the stack's readiness timeout): read sizes
  from such a run, never rates.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import threading
import time
import tracemalloc

_TOP = 25
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))) + "/"


def _rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _site(stat: tracemalloc.Statistic) -> str:
    # The innermost frame outside the standard library says who holds it.
    frames = list(stat.traceback)
    for frame in reversed(frames):
        if "/lib/python3" not in frame.filename or "site-packages" in frame.filename:
            return f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def _project(stat: tracemalloc.Statistic) -> str:
    # The innermost frame of creditflow's own code that led to it (none: Faust's threads).
    for frame in reversed(list(stat.traceback)):
        if _ROOT in frame.filename and "/.venv/" not in frame.filename:
            return f"{frame.filename.removeprefix(_ROOT)}:{frame.lineno}"
    return "(no creditflow frame)"


def _run(path: str, every: float, frames: int, trace: bool) -> None:
    # Tracing from the start slowed the imports past the stack's readiness timeout on a
    # loaded machine: start once the worker is up (what it imported is in the baseline RSS).
    time.sleep(float(os.environ.get("MEMTRACE_DELAY_SECONDS", "30")))
    if "worker" not in sys.argv:  # the API has the ledger's environment too
        return
    if trace:
        tracemalloc.start(frames)
    while True:
        time.sleep(every)
        line: dict[str, object] = {"t": time.time(), "pid": os.getpid()}
        if trace:
            by_site: dict[str, int] = {}
            by_project: dict[str, int] = {}
            for stat in tracemalloc.take_snapshot().statistics("traceback"):
                site, project = _site(stat), _project(stat)
                by_site[site] = by_site.get(site, 0) + stat.size
                by_project[project] = by_project.get(project, 0) + stat.size
            traced, peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            line |= {
                "traced_mb": round(traced / 2**20, 1),
                "traced_peak_mb": round(peak / 2**20, 1),
                "top_mb": _top(by_site),
                "project_mb": _top(by_project),
            }
        else:
            line |= {"holders_mb": _holders(), "pymalloc": _pymalloc()}
        line["rss_mb"] = round(_rss_bytes() / 2**20, 1)
        with open(path, "a") as out:
            out.write(json.dumps(line) + "\n")


def _top(sizes: dict[str, int]) -> dict[str, float]:
    top = sorted(sizes.items(), key=lambda kv: -kv[1])[:_TOP]
    return {site: round(size / 2**20, 2) for site, size in top}


def _deep_size(root: object, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it reaches through containers, each object once."""
    size, stack = 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        size += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif hasattr(obj, "__slots__") and not isinstance(obj, str | bytes | int | float):
            stack.extend(getattr(obj, n) for n in obj.__slots__ if hasattr(obj, n))
        elif hasattr(obj, "__dict__") and type(obj).__module__.split(".")[0] in _OURS:
            stack.append(obj.__dict__)
    return size


_OURS = ("state", "engine", "agents")


def _holders() -> dict[str, float]:
    """The sizes of the worker's caches and buffers, found among the live objects."""
    found: dict[str, list[object]] = {}
    # The worker freezes what exists at its start (engine/runtime/runner.py), the stages
    # among it, and get_objects() skips frozen objects: thaw, look, freeze again (which also
    # freezes what came since: a debug run's cyclic collections scan less).
    gc.unfreeze()
    live = gc.get_objects()
    gc.freeze()
    for obj in live:
        name = type(obj).__name__
        if name in ("PartitionLedger", "SignalStage", "Pseudonymizer", "DigestCache", "Topic"):
            found.setdefault(name, []).append(obj)
    sizes: dict[str, int] = {}
    seen: set[int] = set()

    def add(label: str, value: object) -> None:
        sizes[label] = sizes.get(label, 0) + _deep_size(value, seen)

    for ledger in found.get("PartitionLedger", []):
        for attr in ("_months", "_kinds", "_accounts", "_pending", "_writes", "_fetched"):
            add(f"ledger.{attr}", getattr(ledger, attr, None))
    for stage in found.get("SignalStage", []):
        for attr in ("_pending", "_waiting"):
            add(f"signals.{attr}", getattr(stage, attr, None))
        digests = getattr(stage, "_digests", None)
        add("signals digests", getattr(digests, "_digests", digests))
    for pseudonym in found.get("Pseudonymizer", []):
        add("pseudonym cache", getattr(pseudonym, "_cache", None))
    buffered = 0
    for topic in found.get("Topic", []):
        queue = getattr(topic, "_queue", None)
        if queue is not None:
            buffered += queue.qsize()
    del live
    result = {label: round(size / 2**20, 1) for label, size in sizes.items()}
    result["faust buffered messages (count)"] = buffered
    return result


def _pymalloc() -> dict[str, float]:
    """pymalloc's arenas: bytes in live blocks, and free inside arenas it cannot release."""
    read, write = os.pipe()
    saved = os.dup(2)
    os.dup2(write, 2)
    try:
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(write)
    text = b""
    while chunk := os.read(read, 1 << 16):
        text += chunk
    os.close(read)
    out = {}
    for line in text.decode().splitlines():
        for key, label in (
            ("# arenas allocated current", "arenas_current"),
            ("# bytes in allocated blocks", "allocated_mb"),
            ("# bytes in available blocks", "free_blocks_mb"),
            ("# bytes in", "_"),
        ):
            if line.startswith(key) and label != "_":
                value = int(line.split("=")[-1].strip().replace(",", ""))
                out[label] = value if label == "arenas_current" else round(value / 2**20, 1)
                break
    return out


def _start() -> None:
    path = os.environ.get("MEMTRACE_FILE")
    if not path or os.environ.get("CREDITFLOW_WORKER_STAGES") != "ledger":
        return
    trace = os.environ.get("MEMTRACE_MODE", "holders") == "allocations"
    every = float(os.environ.get("MEMTRACE_SECONDS", "5" if trace else "15"))
    frames = int(os.environ.get("MEMTRACE_FRAMES", "12"))
    threading.Thread(
        target=_run, args=(path, every, frames, trace), daemon=True, name="memtrace"
    ).start()


_start()
