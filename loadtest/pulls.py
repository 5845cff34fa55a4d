"""Product pulls at a target rate, spread over enterprises with a Zipf skew (open loop).

    python -m loadtest.pulls URLS_FILE RATE SECONDS

URLS_FILE holds one URL per line, most popular first; the i-th is pulled with weight
1 / (i + 1). Prints one JSON line: requests, errors, achieved rate, p50 and p99 latency in
milliseconds. Runs in its own process so that it does not share an interpreter lock with
the publisher or the measured services.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time

import aiohttp

from engine import codec

__all__ = ["run"]


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
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(url: str) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
                        return
            except aiohttp.ClientError:
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
        "qps": total / elapsed if elapsed else 0.0,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def main(argv: list[str]) -> None:
    with open(argv[0], encoding="utf-8") as handle:
        urls = [line.strip() for line in handle if line.strip()]
    result = asyncio.run(run(urls, float(argv[1]), float(argv[2])))
    print(codec.dumps(result).decode(), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
