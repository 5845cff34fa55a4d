"""Product pulls at a target rate, spread over enterprises with a Zipf skew (open loop).

    python -m loadtest.pulls URLS_FILE RATE SECONDS

URLS_FILE holds one URL per line, most popular first; the i-th is pulled with weight
1 / (i + 1). Prints one JSON line: requests, errors, achieved rate, p50 and p99 latency in
milliseconds of the pulls that succeeded (one that fails or takes over 2 s is an error).
Runs in its own process so that it does not share an interpreter lock with the publisher
or the measured services.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

import aiohttp
import uvloop

from engine import codec

__all__ = ["run"]

_TIMEOUT_SECONDS = 2.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(urls: list[str], rate: float, seconds: float, seed: int = 1) -> dict[str, float]:
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(len(urls))]
    total = int(rate * seconds)
    chosen = rng.choices(urls, weights, k=total)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=128)
    # A pull slower than this counts as an error: an overloaded API shows as errors and a
    # bounded run, not as an ever-growing queue of requests.
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT_SECONDS)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(url: str) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        return
            except (aiohttp.ClientError, TimeoutError):
                errors += 1
                return
            latencies.append(time.perf_counter() - started)

        tasks = []
        begin = time.perf_counter()
        for i, url in enumerate(chosen):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(url)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    return {
        "requests": total,
        "errors": errors,
        "qps": len(latencies) / elapsed if elapsed else 0.0,  # answered pulls per second
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def main(argv: list[str]) -> None:
    with open(argv[0], encoding="utf-8") as handle:
        urls = [line.strip() for line in handle if line.strip()]
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # a cheaper client
        result = runner.run(run(urls, float(argv[1]), float(argv[2])))
    print(codec.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
