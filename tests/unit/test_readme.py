"""The README is what a user reads first: keep it true."""

from __future__ import annotations

from pathlib import Path

from engine.events.contract import RejectReason
from engine.settings import ENV_PREFIX, Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_two_commands_are_there() -> None:
    assert "make demo" in README and "make test" in README


def test_every_setting_is_documented() -> None:
    for name in Settings.model_fields:
        assert f"`{ENV_PREFIX}{name.upper()}`" in README, name


def test_every_reject_reason_is_documented() -> None:
    for reason in RejectReason:
        assert f"`{reason.value}`" in README, reason
