"""Counterparty classes (DOMAIN.md taxonomy) and the registries that decide them.

Every transaction falls into exactly one class, decided in this order:

1. SELF        the counterparty id is the enterprise's own id (same-name transfer)
2. CASH        channel ``cash``
3. PAYROLL     channel ``payroll``
   JUDICIAL    channel ``judicial`` (a deduction a court ordered, as the bank books it)
4. registry    the counterparty id is listed in specs/registries.toml: its class, except that a
               financial institution whose ``bank_code`` is the reporting bank is BANK_OWN
5. BANK_OWN    the counterparty id is the reporting bank's code, or the counterparty's bank
               is the reporting bank and the channel is ``loan``, ``interest``, ``fee``,
               ``margin`` (into a margin account) or ``bill`` (an acceptance bill paid)
6. TAX         channel ``tax``
7. UTILITY     channel ``utility`` (subtype ``other``)
8. TRADE       everything else: customers and suppliers

Independently of the class, a transaction is cross-border when its currency is not CNY or
its channel is ``fx``.
"""

from __future__ import annotations

import logging
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

from engine.errors import SpecError

__all__ = [
    "BANK_CHANNELS",
    "LENDING",
    "OPERATING_IN",
    "OPERATING_OUT",
    "SUBTYPES",
    "Classification",
    "CounterpartyClass",
    "Registry",
    "RegistryWatcher",
    "classify",
    "load_registry",
]

log = logging.getLogger(__name__)


class CounterpartyClass(StrEnum):
    SELF = "SELF"
    BANK_OWN = "BANK_OWN"
    FIN_PARTNER = "FIN_PARTNER"
    UTILITY = "UTILITY"
    TAX = "TAX"
    SOCIAL = "SOCIAL"
    GOV_OTHER = "GOV_OTHER"
    PSP = "PSP"
    CASH = "CASH"
    PAYROLL = "PAYROLL"
    TRADE = "TRADE"
    JUDICIAL = "JUDICIAL"  # courts and enforcement: neither operating nor financing


#: The subtypes a registry entry may carry, by class ("" = none).
SUBTYPES: Mapping[CounterpartyClass, frozenset[str]] = {
    CounterpartyClass.UTILITY: frozenset({"power", "water", "gas", "heating", "telecom"}),
    CounterpartyClass.SOCIAL: frozenset({"social_insurance", "housing_fund"}),
    CounterpartyClass.FIN_PARTNER: frozenset(
        {"bank", "lender", "lessor", "factor", "guarantor", "investor"}
    ),
    CounterpartyClass.TAX: frozenset({""}),
    CounterpartyClass.GOV_OTHER: frozenset({""}),
    CounterpartyClass.PSP: frozenset({""}),
    CounterpartyClass.JUDICIAL: frozenset({""}),
}
#: Financing partners whose money is a loan (a guarantor's or an investor's is not).
LENDING = frozenset({"bank", "lender", "lessor", "factor"})
#: Channels on which the account-holding bank's own money moves (BANK_OWN, kept apart in
#: the month state's flows).
BANK_CHANNELS = frozenset({"loan", "interest", "fee", "margin", "bill"})

#: Money from customers: what "operating inflow" means in every item.
OPERATING_IN = frozenset({CounterpartyClass.TRADE, CounterpartyClass.PSP, CounterpartyClass.CASH})
#: Money to suppliers, staff, utilities and the state: "operating outflow".
OPERATING_OUT = frozenset(
    {
        CounterpartyClass.TRADE,
        CounterpartyClass.PAYROLL,
        CounterpartyClass.UTILITY,
        CounterpartyClass.TAX,
        CounterpartyClass.SOCIAL,
        CounterpartyClass.GOV_OTHER,
        CounterpartyClass.PSP,
        CounterpartyClass.CASH,
    }
)


class Classification(NamedTuple):
    cls: CounterpartyClass
    subtype: str  # "" when the class has none
    cross_border: bool


@dataclass(frozen=True, slots=True)
class _Entry:
    cls: CounterpartyClass
    subtype: str
    bank_code: str | None


@dataclass(frozen=True, slots=True)
class Registry:
    """One version of the reference registries."""

    version: int
    entries: Mapping[str, _Entry]


def parse_registry(doc: Mapping[str, Any]) -> Registry:
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise SpecError("registries: 'version' must be a positive integer")
    entries: dict[str, _Entry] = {}
    for table in doc.get("entries", []):
        cp_id = table.get("id")
        if not isinstance(cp_id, str) or not cp_id:
            raise SpecError("registries: every entry needs an 'id'")
        if cp_id in entries:
            raise SpecError(f"registries: {cp_id!r} is listed twice")
        try:
            cls = CounterpartyClass(table.get("class"))
        except ValueError:
            raise SpecError(
                f"registries: {cp_id!r} has class {table.get('class')!r}; valid: {sorted(SUBTYPES)}"
            ) from None
        subtype = table.get("subtype", "")
        if cls not in SUBTYPES or subtype not in SUBTYPES[cls]:
            allowed = sorted(SUBTYPES.get(cls, ()))
            raise SpecError(f"registries: {cp_id!r}: subtype {subtype!r} not in {allowed}")
        bank_code = table.get("bank_code")
        if bank_code is not None and cls != CounterpartyClass.FIN_PARTNER:
            raise SpecError(f"registries: {cp_id!r}: only FIN_PARTNER entries have a bank_code")
        entries[cp_id] = _Entry(cls, subtype, bank_code)
    return Registry(version, entries)


def load_registry(path: Path) -> Registry:
    with path.open("rb") as handle:
        return parse_registry(tomllib.load(handle))


def classify(
    registry: Registry,
    enterprise_id: str,
    bank: str,
    channel: str,
    cp_id: str,
    cp_bank: str | None,
    currency: str,
) -> Classification:
    """The class of one transaction (see the module docstring for the order of the rules)."""
    cross_border = currency != "CNY" or channel == "fx"
    C = CounterpartyClass  # noqa: N806 - a short alias keeps the rules readable
    if cp_id == enterprise_id:
        return Classification(C.SELF, "", cross_border)
    if channel == "cash":
        return Classification(C.CASH, "", cross_border)
    if channel == "payroll":
        return Classification(C.PAYROLL, "", cross_border)
    if channel == "judicial":
        return Classification(C.JUDICIAL, "", cross_border)
    entry = registry.entries.get(cp_id)
    if entry is not None:
        if entry.bank_code is not None and entry.bank_code == bank:
            return Classification(C.BANK_OWN, "", cross_border)
        return Classification(entry.cls, entry.subtype, cross_border)
    if cp_id == bank or (cp_bank == bank and channel in BANK_CHANNELS):
        return Classification(C.BANK_OWN, "", cross_border)
    if channel == "tax":
        return Classification(C.TAX, "", cross_border)
    if channel == "utility":
        return Classification(C.UTILITY, "other", cross_border)
    return Classification(C.TRADE, "", cross_border)


class RegistryWatcher:
    """The current registry, reloaded when its file changes (a bad file keeps the old one)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime = path.stat().st_mtime_ns
        self.current = load_registry(path)

    def refresh(self) -> bool:
        """Reload if the file changed; True when a new version is now current."""
        try:
            mtime = self._path.stat().st_mtime_ns
        except OSError as exc:
            log.error(
                "registry file %s unreadable (%s); keeping version %d",
                self._path,
                exc,
                self.current.version,
            )
            return False
        if mtime == self._mtime:
            return False
        self._mtime = mtime
        try:
            registry = load_registry(self._path)
        except (SpecError, tomllib.TOMLDecodeError, OSError) as exc:
            log.error(
                "registry file %s is invalid (%s); keeping version %d",
                self._path,
                exc,
                self.current.version,
            )
            return False
        if registry.version == self.current.version:
            log.error(
                "registry file %s changed but its version is still %d; bump the version "
                "to apply it",
                self._path,
                registry.version,
            )
            return False
        log.info("registry version %d loaded (was %d)", registry.version, self.current.version)
        self.current = registry
        return True
