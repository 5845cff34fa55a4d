"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine.cli.main import _parser
from engine.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]


def _subcommands() -> set[str]:
    actions = [a for a in _parser()._actions if a.dest == "command"]
    return set(actions[0].choices)  # type: ignore[arg-type]


def test_every_service_has_a_pinned_overridable_image_and_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        assert re.fullmatch(r"[\w./-]+:\$\{[A-Z_]+_TAG:-[\w.-]+\}", service["image"]), name
        assert service["healthcheck"]["test"], name


def test_commands_exist_in_the_cli() -> None:
    for name in ("intake", "worker", "api"):
        command = SERVICES[name]["command"]
        assert command[0] == "creditflow" and command[1] in _subcommands()


def test_settings_are_real_settings() -> None:
    fields = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    for name in ("intake", "worker", "api"):
        for key in SERVICES[name]["environment"]:
            if key != "<<":
                assert key in fields, (name, key)
        anchors = COMPOSE["x-creditflow-env"]
        assert set(anchors) <= fields


def test_ports_agree_with_the_settings_and_prometheus() -> None:
    api_env = {**COMPOSE["x-creditflow-env"], **SERVICES["api"]["environment"]}
    api_port = api_env["CREDITFLOW_API_PORT"]
    assert SERVICES["api"]["ports"][0].endswith(f":{api_port}")
    worker_port = SERVICES["worker"]["environment"]["CREDITFLOW_WORKER_WEB_PORT"]
    assert f"127.0.0.1:{worker_port}/healthz" in " ".join(SERVICES["worker"]["healthcheck"]["test"])
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["creditflow-worker"]["dns_sd_configs"][0]["port"] == int(worker_port)
    intake_port = SERVICES["intake"]["environment"]["CREDITFLOW_WORKER_WEB_PORT"]
    assert jobs["creditflow-intake"]["dns_sd_configs"][0]["port"] == int(intake_port)
    assert jobs["creditflow-api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    bootstrap = COMPOSE["x-creditflow-env"]["CREDITFLOW_KAFKA_BOOTSTRAP"]
    assert (
        f"PLAINTEXT://{bootstrap}" == SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_the_image_ships_what_the_services_need() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for directory in ("engine", "agents", "state", "specs", "loadtest"):
        assert f"COPY {directory} {directory}" in dockerfile
    assert SERVICES["worker"]["environment"]["CREDITFLOW_DATA_DIR"] in dockerfile.replace(
        "mkdir ", ""
    )


def test_the_stages_run_apart_and_only_the_ledger_keeps_state() -> None:
    stages = {
        name: SERVICES[name]["environment"]["CREDITFLOW_WORKER_STAGES"]
        for name in ("intake", "worker")
    }
    assert stages == {"intake": "intake", "worker": "ledger"}
    assert "volumes" not in SERVICES["intake"] and SERVICES["worker"]["volumes"]
