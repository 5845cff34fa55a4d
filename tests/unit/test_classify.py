"""Counterparty classification and the registries."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import SpecError
from engine.products.classify import (
    Classification,
    CounterpartyClass,
    RegistryWatcher,
    classify,
    load_registry,
    parse_registry,
)
from engine.products.specs import SPECS_DIR

C = CounterpartyClass
REGISTRY = load_registry(SPECS_DIR / "registries.toml")
ME = "91350100M000100Y43"


def _class(
    cp: str,
    channel: str = "transfer",
    bank: str = "ICBC0001",
    cp_bank: str | None = None,
    currency: str = "CNY",
) -> Classification:
    return classify(REGISTRY, ME, bank, channel, cp, cp_bank, currency)


@pytest.mark.parametrize(
    ("cp", "channel", "cp_bank", "expected"),
    [
        (ME, "transfer", None, (C.SELF, "")),
        (ME, "cash", None, (C.SELF, "")),  # self comes first
        ("ANYONE", "cash", None, (C.CASH, "")),
        ("P-123", "payroll", None, (C.PAYROLL, "")),
        ("UTIL-POWER-0001", "transfer", None, (C.UTILITY, "power")),
        ("UTIL-WATER-0001", "utility", None, (C.UTILITY, "water")),
        ("TAX-STA-0001", "transfer", None, (C.TAX, "")),
        ("SOCIAL-HF-0001", "transfer", None, (C.SOCIAL, "housing_fund")),
        ("GOV-FIN-0001", "transfer", None, (C.GOV_OTHER, "")),
        ("PSP-ALIPAY-0001", "transfer", None, (C.PSP, "")),
        ("ICBC0001", "loan", None, (C.BANK_OWN, "")),  # the reporting bank itself
        ("CCB00002", "loan", None, (C.FIN_PARTNER, "bank")),  # another bank
        ("FIN-LEASE-0001", "transfer", None, (C.FIN_PARTNER, "lessor")),
        ("LOAN-ACCT-77", "interest", "ICBC0001", (C.BANK_OWN, "")),  # an account at the bank
        ("LOAN-ACCT-77", "transfer", "ICBC0001", (C.TRADE, "")),
        ("MARGIN-ACCT-1", "margin", "ICBC0001", (C.BANK_OWN, "")),  # into a margin account
        ("ICBC0001", "bill", None, (C.BANK_OWN, "")),  # an acceptance bill paid
        ("BILL-DESK", "bill", "ICBC0001", (C.BANK_OWN, "")),
        ("BILL-HOLDER", "bill", "BOC00004", (C.TRADE, "")),  # a holder elsewhere
        ("FIN-GUAR-0001", "margin", None, (C.FIN_PARTNER, "guarantor")),  # the registry first
        ("UNLISTED-TAX", "tax", None, (C.TAX, "")),
        ("UNLISTED-UTIL", "utility", None, (C.UTILITY, "other")),
        ("91110000600037341L", "transfer", None, (C.TRADE, "")),
    ],
)
def test_rules_in_order(
    cp: str, channel: str, cp_bank: str | None, expected: tuple[CounterpartyClass, str]
) -> None:
    result = _class(cp, channel, cp_bank=cp_bank)
    assert (result.cls, result.subtype) == expected and not result.cross_border


def test_cross_border_is_independent_of_the_class() -> None:
    assert _class("91110000600037341L", currency="USD").cross_border
    assert _class("91110000600037341L", channel="fx").cross_border
    assert _class("PSP-ALIPAY-0001", currency="HKD") == Classification(C.PSP, "", True)


@pytest.mark.parametrize(
    "doc",
    [
        {"entries": []},
        {"version": 1, "entries": [{"id": "X", "class": "MARTIAN"}]},
        {"version": 1, "entries": [{"id": "X", "class": "UTILITY", "subtype": "lava"}]},
        {"version": 1, "entries": [{"id": "X", "class": "TAX"}, {"id": "X", "class": "TAX"}]},
        {"version": 1, "entries": [{"id": "X", "class": "TAX", "bank_code": "B"}]},
    ],
)
def test_invalid_registries_are_refused(doc: dict[str, object]) -> None:
    with pytest.raises(SpecError):
        parse_registry(doc)


def test_a_changed_registry_file_is_reloaded_and_a_bad_one_is_not(tmp_path: Path) -> None:
    path = tmp_path / "registries.toml"
    path.write_text('version = 1\n[[entries]]\nid = "NEW-PSP"\nclass = "PSP"\n')
    watcher = RegistryWatcher(path)
    assert classify(watcher.current, ME, "B", "transfer", "NEW-PSP", None, "CNY").cls == C.PSP

    def rewrite(text: str) -> None:
        path.write_text(text)
        stat = path.stat()  # make sure the change is seen even within one mtime tick
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))

    rewrite('version = 2\n[[entries]]\nid = "NEW-PSP"\nclass = "GOV_OTHER"\n')
    assert watcher.refresh() and watcher.current.version == 2
    rewrite("version = 3\n[[entries]]\nid = 5\n")  # invalid: kept out
    assert not watcher.refresh() and watcher.current.version == 2
    rewrite('version = 2\n[[entries]]\nid = "NEW-PSP"\nclass = "TAX"\n')  # same version
    assert not watcher.refresh() and watcher.current.version == 2
