"""`creditflow demo`: the embedded stack, a minute of generated bank flows, and two products."""

from __future__ import annotations

import sys
import time
import unicodedata
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from engine import codec
from engine.events.publisher import BankPublisher
from engine.periods import CST, format_month
from engine.products.specs import load_products
from engine.runtime.observe import total, wait_views_published
from engine.runtime.provision import provision_lender
from engine.runtime.runner import EmbeddedStack, embedded_stack, wait_for_interrupt
from engine.settings import Settings
from loadtest.generator import GeneratorConfig, generate

__all__ = ["print_product", "run_demo"]

_CHUNK = 2000


_last_tenth = -1


def _bar(done: int, count: int, applied: int, started: float) -> None:
    """A progress bar on a terminal; a line per tenth when the output is a file."""
    global _last_tenth
    width = 30
    filled = int(width * done / max(count, 1))
    rate = applied / max(time.monotonic() - started, 1e-9)
    text = (
        f"  [{'#' * filled}{'.' * (width - filled)}] published {done:,}/{count:,}"
        f"  applied {applied:,}  ({rate:,.0f} events/s) "
    )
    if sys.stderr.isatty():
        sys.stderr.write("\r" + text)
    elif (tenth := 10 * applied // max(count, 1)) != _last_tenth:
        _last_tenth = tenth
        sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _applied(stack: EmbeddedStack) -> int:
    return int(total(stack.worker_url, "creditflow_ledger_events_total"))


def _publish(
    stack: EmbeddedStack, config: GeneratorConfig, count: int, seconds: float
) -> Counter[str]:
    bootstrap = stack.settings.kafka_bootstrap
    assert bootstrap is not None
    publishers = {
        bank: BankPublisher(bootstrap, bank, stack.settings.partitions) for bank in config.banks
    }
    per_enterprise: Counter[str] = Counter()
    pending: dict[str, list[dict[str, Any]]] = {bank: [] for bank in config.banks}
    started = time.monotonic()
    done = 0
    for event in generate(config):
        pending[event["bank"]].append(event)
        per_enterprise[event["enterprise_id"]] += 1
        done += 1
        if done % _CHUNK == 0:
            for bank, events in pending.items():
                publishers[bank].publish_batch(events)
                events.clear()
            ahead = started + seconds * done / count - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            _bar(done, count, _applied(stack), started)
    for bank, events in pending.items():
        publishers[bank].publish_batch(events)
    for publisher in publishers.values():
        publisher.flush()
    while (applied := _applied(stack)) < done:
        _bar(done, count, applied, started)
        time.sleep(0.5)
    _bar(done, count, done, started)
    sys.stderr.write("\n")
    assert bootstrap is not None
    wait_views_published(stack.worker_url, bootstrap, stack.settings.partitions)
    return per_enterprise


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _format(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "fen" and isinstance(value, int):
        return f"{value:,} fen  (CNY {value / 100:,.2f})"
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_product(body: dict[str, Any]) -> None:
    spec = load_products()[body["product"]]
    units = {item.id: item.unit.value for item in spec.items}
    names = {item.id: item.name_zh for item in spec.items}
    print(f"\n{spec.name_zh} / {spec.name_en}")
    print(
        f"enterprise {body['enterprise_id']}  period {body['period']}"
        f"  partial={body['partial']}  watermark {body['as_of'].get('watermark')}"
    )
    for segment in body["segments"]:
        print(f"\n  {segment['name']} ({segment['id']})")
        for item_id, value in segment["items"].items():
            label = f"{_pad(item_id, 34)} {_pad(names[item_id], 26)}"
            print(f"    {label} {_format(value, units[item_id])}")


def _get(url: str, headers: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        body: dict[str, Any] = codec.loads(response.read())
        return body


def _last_complete_periods() -> tuple[str, str]:
    now = datetime.now(CST)
    this_month = now.year * 12 + now.month - 1
    month = format_month(this_month - 1)
    quarter_index = (now.year * 4 + (now.month - 1) // 3) - 1
    return month, f"{quarter_index // 4}Q{quarter_index % 4 + 1}"


def run_demo(
    settings: Settings,
    enterprises: int = 1000,
    months: int = 13,
    seconds: float = 60.0,
    stay: bool = False,
) -> None:
    config = GeneratorConfig(enterprises=enterprises, months=months, now=datetime.now(UTC))
    print(
        f"creditflow demo: {enterprises} enterprises, {months} months, banks "
        f"{', '.join(config.banks)}"
    )
    print("  generating the data set once to size it ...", flush=True)
    count = sum(1 for _ in generate(config))
    print(
        "  starting the embedded stack (broker, Redis if needed, intake and ledger workers, "
        "API) ...",
        flush=True,
    )
    # The stages apart, as in production (docker-compose.yml): each gets a core of its own.
    with embedded_stack(settings, banks=config.banks, split_stages=True) as stack:
        print(
            f"  API {stack.api_url}   ledger metrics {stack.worker_url}/metrics   intake "
            f"metrics {stack.intake_url}/metrics"
        )
        print(f"  streaming {count:,} transactions for about {seconds:.0f} s:", flush=True)
        per_enterprise = _publish(stack, config, count, seconds)
        enterprise_id = per_enterprise.most_common(1)[0][0]
        month, quarter = _last_complete_periods()
        # Every pull needs an institution's token and the enterprise's authorization: a
        # throwaway lender, authorized by the demo on the enterprise's behalf.
        lender = provision_lender(stack.settings, "DEMOLEND", [enterprise_id], "Demo lender")
        urls = [
            stack.api_url + lender.path(enterprise_id, "monthly", month),
            stack.api_url + lender.path(enterprise_id, "quarterly", quarter),
        ]
        for url in urls:
            print_product(_get(url, lender.headers))
        print("\nPull them yourself (run `creditflow demo --stay` to keep the stack up):")
        for url in urls:
            print(f"  curl -s -H 'Authorization: Bearer {lender.token}' '{url}'")
        if stay:
            print("\nThe stack keeps running; Ctrl-C stops all of it.", flush=True)
            wait_for_interrupt(stack)
    print("\ndemo finished; everything it started has stopped.")
