"""The one place that reads the environment.

Every knob is a field of :class:`Settings`, read from variables prefixed ``CREDITFLOW_``.
A ``CREDITFLOW_*`` variable that names no field is an error, so a typo fails loudly
instead of being ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ENV_PREFIX", "Settings"]

ENV_PREFIX = "CREDITFLOW_"

# A development-only key for pseudonymising counterparty and account ids in Redis views.
# Production sets CREDITFLOW_PSEUDONYM_KEY; changing it is a migration (every view must be
# republished, and counterparty sets of different keys do not union).
_DEV_PSEUDONYM_KEY = "creditflow-development-key-not-for-production"
# A development-only key for the keyed hashes of bearer tokens. Production sets
# CREDITFLOW_TOKEN_HASH_KEY; changing it invalidates every issued token.
_DEV_TOKEN_HASH_KEY = "creditflow-development-token-key-not-for-production"


class Settings(BaseSettings):
    """All configuration of creditflow, frozen once read."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    kafka_bootstrap: str | None = Field(
        default=None,
        description="host:port of the Kafka brokers. Unset under `up`/`demo`: start the "
        "embedded broker. Required by `worker`.",
    )
    redis_url: SecretStr = Field(
        default=SecretStr("redis://127.0.0.1:6379/0"),
        description="Redis that holds the published views (may carry a password).",
    )
    redis_cluster: bool = Field(
        default=False,
        description="true: CREDITFLOW_REDIS_URL names one node of a Redis Cluster (any "
        "primary or replica; the others are found from it, and followed through failovers). "
        "Its database must be 0.",
    )
    redis_prefix: str = Field(
        default="cf", pattern=r"^[A-Za-z0-9_.-]{1,32}$", description="Prefix of every Redis key."
    )
    api_host: str = Field(
        default="127.0.0.1", description="Address the API and the worker's web port bind."
    )
    api_port: int = Field(default=8080, ge=0, le=65535, description="Port of the HTTP API.")
    api_metrics_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Port of an unauthenticated /metrics for Prometheus on the internal "
        "network (it answers while Redis is away, when the token check cannot); 0: none. "
        "The API port's /metrics needs an operator's token.",
    )
    api_cache_products: int = Field(
        default=20_000,
        ge=0,
        description="Rendered products the API keeps until their views change (0: none). "
        "About 15 KB each.",
    )
    worker_web_port: int = Field(
        default=6066,
        ge=0,
        le=65535,
        description="Port of the worker's /metrics, /healthz, /readyz.",
    )
    data_dir: Path = Field(
        default=Path(".creditflow"), description="Worker state (RocksDB per partition)."
    )
    partitions: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="Partitions of every bank topic and of the routed topic. Fixed for the "
        "life of a deployment: changing it moves enterprises between partitions.",
    )
    group_id: str = Field(
        default="creditflow", pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Faust app id."
    )
    pseudonym_key: SecretStr = Field(
        default=SecretStr(_DEV_PSEUDONYM_KEY),
        description="Key of the keyed hash that replaces counterparty/account ids in views.",
    )
    batch_max_messages: int = Field(
        default=500, ge=1, description="Messages a stage takes from Kafka per processing step."
    )
    batch_within_seconds: float = Field(
        default=0.05, gt=0, description="Longest wait to fill a processing step."
    )
    commit_interval_seconds: float = Field(
        default=0.25,
        ge=0,
        description="Longest time the ledger holds applied events before it commits their "
        "state and publishes their views; the events of that time are committed together, "
        "so a month that several of them change is encoded and published once. 0: commit "
        "every step.",
    )
    ledger_set_aside_after_failures: int = Field(
        default=5,
        ge=0,
        description="Failures in a row of the ledger applying the same routed messages after "
        "which the rows whose apply raises are set aside to txns.rejected (apply_failed) and "
        "the partition goes on. Outages (disk, broker, Redis) are retried for ever. 0: never "
        "set aside, retry for ever.",
    )
    bank_refresh_seconds: float = Field(
        default=5.0, gt=0, description="How often a worker looks for new bank topics."
    )
    registry_path: Path = Field(
        default=Path(__file__).resolve().parent.parent / "specs" / "registries.toml",
        description="Reference registries (counterparty classes); reloaded when it changes.",
    )
    signal_rules_path: Path = Field(
        default=Path(__file__).resolve().parent.parent / "specs" / "signals.toml",
        description="The signal rules and their parameters (a deployment tunes them in its "
        "own copy); read when a worker starts.",
    )
    signals_enabled: bool = Field(
        default=True,
        description="Whether ledger workers judge the signal rules (false: a deployment that "
        "serves only the products; changes stay marked and are judged once it is true).",
    )
    signal_retention_days: int = Field(
        default=90,
        ge=1,
        description="Days signals are kept in institutions' feeds, and the retention of the "
        "credit.signals topic.",
    )
    registry_refresh_seconds: float = Field(
        default=5.0, gt=0, description="How often a worker checks the registries for a change."
    )
    history_months: int = Field(
        default=36,
        # 15 at least: the current quarter's 12-month windows, the 12 months before it and
        # the same quarter a year earlier are then always kept (spec version 5: windows
        # read the months on record only)
        ge=15,
        le=120,
        description="Months of history kept and shown; older bookings are rejected as too_old.",
    )
    log_level: Literal["debug", "info", "warn", "error"] = Field(
        default="info", description="Log level of every process."
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="How every process (worker, API, command line) writes its log: text, a "
        "line for a person; json, one JSON object a line with time, level, component, event "
        "and, where they apply, partition and offsets (engine/logs.py).",
    )
    view_cache_months: int = Field(
        default=10_000,
        ge=1,
        description="Month aggregates a worker keeps decoded in memory, shared out among "
        "the partitions (about 15 KB each).",
    )
    signal_digest_months: int = Field(
        default=12_000,
        ge=1,
        description="Month digests the signal judge keeps decoded in a ledger worker (about "
        "8 KB each), for the enterprises it judged last; a month not kept is read again from "
        "state when its enterprise is judged.",
    )
    worker_stages: Literal["all", "intake", "ledger", "access"] = Field(
        default="all",
        description="Stages this worker runs. intake and ledger in separate processes (each "
        "its own consumer group, <group_id>-intake and <group_id>-ledger) use a core each and "
        "never wait on each other's Kafka buffers. access applies the access log and indexes "
        "query records.",
    )
    worker_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="CPU niceness a worker sets for itself: ingest is throughput work and, on "
        "a machine it shares with the API, yields the CPU to pulls. 0 leaves it as started.",
    )
    api_realtime_priority: int = Field(
        default=0,
        ge=0,
        le=99,
        description="Real-time (SCHED_FIFO) priority the API asks for, 1 to 99, on a machine "
        "it shares with ingest: a pull then takes a core the moment it arrives instead of "
        "waiting its turn behind the workers and the broker. Needs CAP_SYS_NICE (the API "
        "warns and runs normally without it). 0: normal scheduling.",
    )
    rocksdb_block_cache_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=0,
        description="RocksDB block cache shared by the partitions of a worker.",
    )

    token_hash_key: SecretStr = Field(
        default=SecretStr(_DEV_TOKEN_HASH_KEY),
        description="Key of the keyed hash (HMAC-SHA256) under which bearer tokens are stored. "
        "The same for every API process and the command line; changing it voids every token.",
    )
    query_record_retention_days: int = Field(
        default=1827,
        ge=1,
        description="Days query records are kept (five years by default): the retention of "
        "the query records topic and of their index in Redis.",
    )
    reciprocity_required: bool = Field(
        default=True,
        description="An institution pulls products only if it is also a provider (the "
        "platform's reciprocity rule). false turns the rule off.",
    )
    api_institution_rate_limit: str = Field(
        default="200/second",
        pattern=r"^\d+/(second|minute|hour)$",
        description="Requests an institution may make per API process (then 429 with "
        "Retry-After), as N/second, N/minute or N/hour.",
    )
    api_auth_failure_limit: str = Field(
        default="30/minute",
        pattern=r"^\d+/(second|minute|hour)$",
        description="Failed authentications a client address may make per API process before "
        "its requests get 429.",
    )
    api_record_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How long query records may wait in the API's journal for the broker: "
        "once the oldest has waited longer, pulls get 503 and no data until the broker has "
        "them. Also how long the API waits for the broker to acknowledge one message.",
    )
    api_journal_dir: Path | None = Field(
        default=None,
        description="Where each API process journals its query records until the broker has "
        "them (SQLite, fsync per commit; engine/api/journal.py). Must survive a restart of "
        "the API (a persistent volume). Default: <data_dir>/api-journal.",
    )
    api_journal_fsync: bool = Field(
        default=False,
        description="true: each commit of query records is synced to the disk before the "
        "products leave (survives the machine's power loss, not only any process's crash); "
        "false: a commit is in the kernel (survives any process's crash) and reaches the "
        "broker within 50 ms; a power loss can lose the records not yet shipped.",
    )
    api_command_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a request that changes access state (an authorization, a "
        "dispute, a token) waits for the access stage to apply it before 503.",
    )

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_env(cls, data: Any) -> Any:
        known = {ENV_PREFIX + name.upper() for name in cls.model_fields}
        unknown = sorted(k for k in os.environ if k.startswith(ENV_PREFIX) and k not in known)
        if unknown:
            raise ValueError(
                f"unknown setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        return data

    @property
    def pseudonym_key_is_default(self) -> bool:
        return self.pseudonym_key.get_secret_value() == _DEV_PSEUDONYM_KEY

    @property
    def token_hash_key_is_default(self) -> bool:
        return self.token_hash_key.get_secret_value() == _DEV_TOKEN_HASH_KEY

    @model_validator(mode="after")
    def _cluster_database_zero(self) -> Settings:
        if self.redis_cluster:
            path = urlsplit(self.redis_url.get_secret_value()).path.strip("/")
            if path not in ("", "0"):
                raise ValueError(
                    f"CREDITFLOW_REDIS_URL names database {path}, but a Redis Cluster has "
                    "only database 0: end the URL with /0 or nothing"
                )
        return self

    @property
    def journal_dir(self) -> Path:
        """Where the API journals its query records (api_journal_dir or its default)."""
        return self.api_journal_dir or self.data_dir / "api-journal"
