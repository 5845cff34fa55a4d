"""Registries change while the worker runs: new events are classified by the new version,
earlier ones keep their class, and the products say which versions they used."""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.events.publisher import BankPublisher
from engine.runtime.observe import total
from engine.runtime.runner import EmbeddedStack, embedded_stack
from engine.settings import Settings
from tests.factories import enterprise_ids, event
from tests.integration.conftest import BANKS, PARTITIONS, assert_products, pull, wait_until

pytestmark = pytest.mark.integration

WHO = enterprise_ids(1, seed=777)[0]
PLATFORM = "NEW-PLATFORM-0001"


@pytest.fixture(scope="module")
def stack(registry_file: Path) -> Iterator[EmbeddedStack]:
    token = secrets.token_hex(3)
    settings = Settings(
        partitions=PARTITIONS,
        group_id=f"cf-reg-{token}",
        redis_prefix=f"cfreg-{token}",
        registry_path=registry_file,
        registry_refresh_seconds=0.3,
        batch_within_seconds=0.02,
    )
    with embedded_stack(settings, banks=BANKS) as running:
        yield running


def _publish(stack: EmbeddedStack, **fields: Any) -> None:
    assert stack.settings.kafka_bootstrap is not None
    publisher = BankPublisher(stack.settings.kafka_bootstrap, BANKS[0], PARTITIONS)
    publisher.publish(
        event(
            **{
                "bank": BANKS[0],
                "enterprise_id": WHO,
                "booked_at": "2026-02-10T10:00:00+08:00",
                "counterparty": {"id": PLATFORM},
                **fields,
            }
        )
    )
    publisher.flush()


def _expect(stack: EmbeddedStack, trade: int, psp: int) -> None:
    assert_products(
        stack, {WHO: {"2026-02": {"trade_inflow_fen": trade, "psp_inflow_fen": psp}}}, timeout=30
    )


def test_a_registry_change_applies_from_the_moment_it_is_loaded(
    stack: EmbeddedStack, registry_file: Path
) -> None:
    _publish(stack, txn_id="BEFORE", amount_fen=100)
    _expect(stack, trade=100, psp=0)  # unknown id: a trade counterparty

    text = registry_file.read_text()
    was = tomllib.loads(text)["version"]  # the shipped registry's version, then the next
    text = text.replace(f"version = {was}", f"version = {was + 1}", 1)
    text += f'\n[[entries]]\nid = "{PLATFORM}"\nclass = "PSP"\nname = "新支付平台"\n'
    registry_file.write_text(text)
    os.utime(registry_file)
    wait_until(
        lambda: total(stack.worker_url, "creditflow_registry_version") == was + 1,
        30,
        f"the worker to load registry version {was + 1}",
    )

    _publish(stack, txn_id="AFTER", amount_fen=10_000)
    _expect(stack, trade=100, psp=10_000)  # the earlier event keeps its class
    status, body = pull(stack, WHO, "2026-02")
    assert status == 200 and body["registry_versions"] == [was, was + 1]

    # A reversal removes what its original added, under the class it was counted in.
    _publish(stack, txn_id="BEFORE-R", amount_fen=100, direction="out", reversal_of="BEFORE")
    _expect(stack, trade=0, psp=10_000)
    status, body = pull(stack, WHO, "2026-02")
    assert body["registry_versions"] == [was + 1]
