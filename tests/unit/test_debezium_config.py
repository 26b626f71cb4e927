"""``kafkaguard debezium config``: the REST body and the Strimzi KafkaConnector, the password a provider reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from kafkaguard.cli.app import app
from kafkaguard.errors import ConfigurationError
from kafkaguard.relay.debezium import DebeziumOptions, connector_config

PASSWORD = "Db-Pa55:w@rd/x"
URL = "postgresql+psycopg://kg:Db-Pa55%3Aw%40rd%2Fx@db.internal:6432/orders?sslmode=verify-full"


@pytest.fixture(autouse=True)
def _no_settings_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("KAFKAGUARD_DATABASE_URL", "KAFKAGUARD_DB_SCHEMA", "KAFKAGUARD_CONFIG"):
        monkeypatch.delenv(var, raising=False)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, ["debezium", "config", "--database-url", URL, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def assert_no_password(text: str) -> None:
    for form in (PASSWORD, "Db-Pa55%3Aw%40rd%2Fx", "Pa55"):
        assert form not in text


def test_json_is_the_rest_body_with_a_file_provider_reference() -> None:
    text = run("--schema", "orders")
    assert_no_password(text)
    body = json.loads(text)
    assert set(body) == {"name", "config"}
    assert body["name"] == "kafkaguard-outbox-orders"
    config = body["config"]
    ref = "${file:/opt/kafka/external-configuration/kafkaguard/db.properties:password}"
    assert config["database.password"] == ref
    assert config["database.hostname"] == "db.internal" and config["database.port"] == "6432"
    assert config["database.user"] == "kg" and config["database.dbname"] == "orders"
    assert config["database.sslmode"] == "verify-full"
    # the same configuration as the standalone relay's, the password aside
    inline = connector_config(DebeziumOptions(database_url=URL, schema="orders"))["config"]
    assert inline["database.password"] == PASSWORD
    assert {**inline, "database.password": ref} == config


def test_json_with_a_chosen_file_key_and_name() -> None:
    body = json.loads(run("--schema", "s", "--name", "relay-s", "--password-file", "/etc/kg/db.properties",
                          "--password-key", "pg"))  # fmt: skip
    assert body["name"] == "relay-s"
    assert body["config"]["database.password"] == "${file:/etc/kg/db.properties:pg}"


def _strimzi(text: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(text) if d is not None]
    assert len(docs) == 1
    doc: dict[str, Any] = docs[0]
    return doc


def test_strimzi_is_a_kafka_connector_with_a_kubernetes_secret_reference() -> None:
    text = run("--schema", "orders", "--format", "strimzi", "--cluster", "my-connect", "--namespace", "shop")
    assert_no_password(text)
    res = _strimzi(text)
    assert res["apiVersion"] == "kafka.strimzi.io/v1beta2" and res["kind"] == "KafkaConnector"
    assert res["metadata"] == {
        "name": "kafkaguard-outbox-orders", "namespace": "shop", "labels": {"strimzi.io/cluster": "my-connect"},
    }  # fmt: skip
    spec = res["spec"]
    assert spec["class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert spec["tasksMax"] == 1
    config = spec["config"]
    assert "connector.class" not in config and "tasks.max" not in config  # Strimzi refuses them there
    assert config["database.password"] == "${secrets:shop/kafkaguard-db:password}"
    assert config["transforms.outbox.route.topic.replacement"] == "outbox.event.${routedByValue}"
    assert all(isinstance(v, str) for v in config.values())  # Connect wants strings; YAML kept them so
    body = json.loads(run("--schema", "orders"))["config"]
    assert {k: v for k, v in body.items() if k not in ("connector.class", "tasks.max", "database.password")} == {
        k: v for k, v in config.items() if k != "database.password"
    }
    assert "io.strimzi.kafka.KubernetesSecretConfigProvider" in text  # what the KafkaConnect needs, as comments


def test_strimzi_with_a_mounted_file() -> None:
    text = run("--schema", "orders", "--format", "strimzi", "--provider", "file")
    assert_no_password(text)
    config = _strimzi(text)["spec"]["config"]
    assert config["database.password"] == "${file:/opt/kafka/external-configuration/kafkaguard/db.properties:password}"
    assert "FileConfigProvider" in text


def test_strimzi_refuses_a_name_kubernetes_refuses() -> None:
    with pytest.raises(ConfigurationError, match="--name"):
        CliRunner().invoke(app, ["debezium", "config", "--database-url", URL, "--schema", "Orders_2", "--format",
                                 "strimzi"], catch_exceptions=False)  # fmt: skip
    text = run("--schema", "Orders_2", "--format", "strimzi", "--name", "orders-2")
    assert _strimzi(text)["metadata"]["name"] == "orders-2"


def test_no_database_url_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="database URL"):
        CliRunner().invoke(app, ["debezium", "config", "--schema", "s"], catch_exceptions=False)


def test_connector_config_with_a_reference_drops_the_password(tmp_path: Path) -> None:
    ref = "${file:" + str(tmp_path / "db.properties") + ":password}"
    out = connector_config(DebeziumOptions(database_url=URL, schema="s"), password_reference=ref)
    assert out["config"]["database.password"] == ref
    assert_no_password(json.dumps(out))


MARIADB_URL = "mysql+pymysql://kg:Db-Pa55%3Aw%40rd%2Fx@maria.internal:3307/orders?charset=utf8mb4"


def test_a_mariadb_url_gets_the_binlog_connector_with_its_schema_history_in_kafka(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKAGUARD_BOOTSTRAP_SERVERS", "k1.internal:9093,k2.internal:9093")
    result = CliRunner().invoke(app, ["debezium", "config", "--database-url", MARIADB_URL], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert_no_password(result.output)
    config = json.loads(result.output)["config"]
    assert config["connector.class"] == "io.debezium.connector.mariadb.MariaDbConnector"
    assert config["database.hostname"] == "maria.internal" and config["database.port"] == "3307"
    # no schema given: the URL's database is the one relayed
    assert config["database.include.list"] == "orders" and config["table.include.list"] == "orders.outbox"
    assert config["schema.history.internal.kafka.bootstrap.servers"] == "k1.internal:9093,k2.internal:9093"
    assert config["snapshot.locking.mode"] == "none" and config["snapshot.mode"] == "no_data"
    assert config["time.precision.mode"] == "connect"  # occurred_at as an ISO 8601 header
    assert config["database.password"].startswith("${file:")
    assert not {"slot.name", "publication.name", "plugin.name", "database.sslmode"} & set(config)
    # the Outbox Event Router part is the PostgreSQL connector's
    postgres = connector_config(DebeziumOptions(database_url=URL))["config"]
    assert {k: v for k, v in config.items() if k.startswith("transforms.")} == {
        k: v for k, v in postgres.items() if k.startswith("transforms.")
    }


def test_on_mariadb_the_schema_names_the_database_and_the_replica_id_is_stable_and_not_the_servers() -> None:
    opts = DebeziumOptions(database_url=MARIADB_URL, schema="billing", bootstrap="k:9092")
    config = connector_config(opts)["config"]
    assert config["table.include.list"] == "billing.outbox"
    assert (
        config["database.server.id"] == str(opts.replica_id) == str(DebeziumOptions(MARIADB_URL, "billing").replica_id)
    )
    assert opts.replica_id >= 100_000
    assert DebeziumOptions(MARIADB_URL, "other").replica_id != opts.replica_id
    assert (
        connector_config(DebeziumOptions(MARIADB_URL, "b", bootstrap="k:9092", server_id=7))["config"][
            "database.server.id"
        ]
        == "7"
    )


def test_the_mariadb_connector_without_bootstrap_servers_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigurationError, match="schema history in Kafka"):
        connector_config(DebeziumOptions(database_url=MARIADB_URL))
