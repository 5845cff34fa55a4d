"""Settings come from CREDITFLOW_* variables, and a variable the engine does not know is an
error rather than a setting silently ignored (a misspelt CREDITFLOW_API_RECORD_TIMEOUT would
otherwise leave the default in place)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.settings import ENV_PREFIX, Settings


def test_a_variable_sets_its_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}API_RECORD_TIMEOUT_SECONDS", "3.5")
    monkeypatch.setenv(f"{ENV_PREFIX}API_JOURNAL_FSYNC", "true")
    settings = Settings()
    assert settings.api_record_timeout_seconds == 3.5 and settings.api_journal_fsync is True


def test_an_unknown_variable_is_an_error_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}API_RECORD_TIMEOUT", "3.5")  # _SECONDS missing
    with pytest.raises(ValidationError, match=f"{ENV_PREFIX}API_RECORD_TIMEOUT"):
        Settings()


def test_a_value_out_of_range_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}API_RECORD_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValidationError, match="api_record_timeout_seconds"):
        Settings()


def test_the_journal_lives_under_the_data_dir_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}DATA_DIR", "/srv/cf")
    assert str(Settings().journal_dir) == "/srv/cf/api-journal"
    monkeypatch.setenv(f"{ENV_PREFIX}API_JOURNAL_DIR", "/journal")
    assert str(Settings().journal_dir) == "/journal"


def test_a_redis_cluster_url_names_database_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"{ENV_PREFIX}REDIS_CLUSTER", "true")
    for url in ("redis://node-1:6379", "redis://node-1:6379/0", "rediss://:pw@node-1:6379/"):
        monkeypatch.setenv(f"{ENV_PREFIX}REDIS_URL", url)
        assert Settings().redis_cluster
    monkeypatch.setenv(f"{ENV_PREFIX}REDIS_URL", "redis://node-1:6379/2")
    with pytest.raises(ValidationError, match="only database 0"):
        Settings()
    monkeypatch.setenv(f"{ENV_PREFIX}REDIS_CLUSTER", "false")
    assert Settings().redis_url.get_secret_value().endswith("/2")  # one Redis: any database
