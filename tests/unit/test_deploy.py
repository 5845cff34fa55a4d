"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from engine.cli.main import _parser
from engine.settings import ENV_PREFIX, Settings
from tests.promql import (
    DASHBOARD_FILE,
    dashboard_panels,
    dashboard_queries,
    recorded_names,
    unknown_names,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
GRAFANA = ROOT / "deploy" / "grafana" / "provisioning"


def _subcommands() -> set[str]:
    actions = [a for a in _parser()._actions if a.dest == "command"]
    return set(actions[0].choices)  # type: ignore[arg-type]


def test_every_service_has_a_pinned_overridable_image_and_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        assert re.fullmatch(r"[\w./-]+:\$\{[A-Z_]+_TAG:-[\w.-]+\}", service["image"]), name
        assert service["healthcheck"]["test"], name


def test_commands_exist_in_the_cli() -> None:
    for name in ("intake", "worker", "access", "api"):
        command = SERVICES[name]["command"]
        assert command[0] == "creditflow" and command[1] in _subcommands()


def test_settings_are_real_settings() -> None:
    fields = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    for name in ("intake", "worker", "access", "api"):
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
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["creditflow-worker"]["dns_sd_configs"][0]["port"] == int(worker_port)
    intake_port = SERVICES["intake"]["environment"]["CREDITFLOW_WORKER_WEB_PORT"]
    assert jobs["creditflow-intake"]["dns_sd_configs"][0]["port"] == int(intake_port)
    metrics_port = api_env["CREDITFLOW_API_METRICS_PORT"]
    assert jobs["creditflow-api"]["static_configs"][0]["targets"] == [f"api:{metrics_port}"]
    assert not any(metrics_port in port for port in SERVICES["api"]["ports"])  # not published
    assert jobs["creditflow-access"]["dns_sd_configs"][0]["port"] == int(worker_port)
    bootstrap = COMPOSE["x-creditflow-env"]["CREDITFLOW_KAFKA_BOOTSTRAP"]
    advertised = SERVICES["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"].split(",")
    assert f"INTERNAL://{bootstrap}" in advertised


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
        for name in ("intake", "worker", "access")
    }
    assert stages == {"intake": "intake", "worker": "ledger", "access": "access"}
    assert "volumes" not in SERVICES["intake"] and SERVICES["worker"]["volumes"]
    assert "volumes" not in SERVICES["access"]  # its state is the access log and Redis


def test_banks_reach_kafka_only_with_scram_and_write_only_their_own_topic() -> None:
    kafka = SERVICES["kafka"]["environment"]
    protocols = dict(p.split(":") for p in kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert protocols["BANKS"] == "SASL_PLAINTEXT" and protocols["INTERNAL"] == "PLAINTEXT"
    assert kafka["KAFKA_SASL_ENABLED_MECHANISMS"] == "SCRAM-SHA-512"
    assert "StandardAuthorizer" in kafka["KAFKA_AUTHORIZER_CLASS_NAME"]
    assert kafka["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    # Only the BANKS listener is published; the INTERNAL one stays on the compose network.
    assert [p.rsplit(":", 1)[1] for p in SERVICES["kafka"]["ports"]] == ["9094"]
    assert "BANKS://" in kafka["KAFKA_LISTENERS"] and ":9094" in kafka["KAFKA_LISTENERS"]
    script = (ROOT / "deploy" / "kafka" / "init-banks.sh").read_text()
    acl_lines = [line for line in script.splitlines() if "kafka-acls.sh" in line]
    assert len(acl_lines) == 1  # one ACL command: the bank's own topic, nothing else
    acl = script[script.index("kafka-acls.sh") : script.index("done <")]
    assert '--allow-principal "User:$user"' in acl and '--topic "$topic"' in acl
    assert "--operation Write --operation Describe" in acl and "--group" not in acl
    assert 'user="bank-$code"' in script and 'topic="bank.$code.txns"' in script
    assert "SCRAM-SHA-512=[password=$password]" in script
    assert "deploy/kafka/banks.txt" in (ROOT / ".gitignore").read_text()


def test_the_token_key_must_be_set_for_compose() -> None:
    env = COMPOSE["x-creditflow-env"]
    assert env["CREDITFLOW_TOKEN_HASH_KEY"].startswith("${CREDITFLOW_TOKEN_HASH_KEY:?")


def _datasource() -> dict[str, Any]:
    [datasource] = yaml.safe_load((GRAFANA / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    return datasource  # type: ignore[no-any-return]


def test_grafana_is_provisioned_with_the_prometheus_and_the_dashboard_beside_it() -> None:
    grafana = SERVICES["grafana"]
    binds = [volume.split(":") for volume in grafana["volumes"] if volume.startswith("./")]
    assert all(mode == "ro" for *_, mode in binds)
    mounts = {host: inside for host, inside, _ in binds}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    [provider] = yaml.safe_load((GRAFANA / "dashboards" / "creditflow.yml").read_text())[
        "providers"
    ]
    dashboards = provider["options"]["path"]
    assert mounts["./deploy/grafana/dashboards"] == dashboards
    assert DASHBOARD_FILE.parent == ROOT / "deploy" / "grafana" / "dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards}/{DASHBOARD_FILE.name}"
    assert "prometheus" in grafana["depends_on"]
    # The datasource is the Prometheus service, at its port, sampled as often as it scrapes.
    datasource = _datasource()
    assert datasource["type"] == "prometheus" and datasource["access"] == "proxy"
    [published] = SERVICES["prometheus"]["ports"]
    assert datasource["url"] == f"http://prometheus:{published.rsplit(':', 1)[1]}"
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert datasource["jsonData"]["timeInterval"] == prometheus["global"]["scrape_interval"]


def test_the_dashboard_parses_and_every_panel_reads_the_provisioned_datasource() -> None:
    uid = _datasource()["uid"]
    panels = dashboard_panels()
    assert len(panels) >= 20, "the panels of docs/operations.md, Dashboard"
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"] and panel["description"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid and target["expr"], panel["title"]


def test_the_dashboard_reads_only_metrics_labels_and_recorded_series_that_exist() -> None:
    recorded = recorded_names()
    for title, expr in dashboard_queries():
        assert unknown_names(expr, recorded) == [], (title, expr)
