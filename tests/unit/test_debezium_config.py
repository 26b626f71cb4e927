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


KAFKA_PASSWORD = "Kafka-S3cr3t-pw"


def _secured(monkeypatch: pytest.MonkeyPatch, **extra: str | None) -> None:
    """A SCRAM-over-TLS ``kafka_security`` block in the environment; ``extra`` changes (None: drops) a field."""
    monkeypatch.setenv("KAFKAGUARD_BOOTSTRAP_SERVERS", "k1.internal:9094")
    values: dict[str, str | None] = {
        "PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-512", "USERNAME": "relay",
        "PASSWORD": KAFKA_PASSWORD, "CA_LOCATION": "/etc/kafka/ca.pem", **extra,
    }  # fmt: skip
    for name, value in values.items():
        if value is not None:
            monkeypatch.setenv(f"KAFKAGUARD_KAFKA_SECURITY__{name}", value)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["debezium", "config", *args], catch_exceptions=False)


def test_on_a_secured_cluster_the_mariadb_schema_history_clients_get_the_security_with_references(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _secured(monkeypatch)
    result = _invoke("--database-url", MARIADB_URL, "--password-file", "/etc/kg/db.properties")
    assert result.exit_code == 0, result.output
    assert KAFKA_PASSWORD not in result.output + result.stderr
    assert_no_password(result.stdout)
    config = json.loads(result.stdout)["config"]
    for client in ("producer", "consumer"):
        prefix = f"schema.history.internal.{client}."
        assert config[prefix + "security.protocol"] == "SASL_SSL"
        assert config[prefix + "sasl.mechanism"] == "SCRAM-SHA-512"
        assert config[prefix + "sasl.jaas.config"] == "${file:/etc/kg/db.properties:sasl.jaas.config}"
        assert config[prefix + "ssl.truststore.location"] == "/etc/kafka/ca.pem"
    assert config["database.password"] == "${file:/etc/kg/db.properties:password}"
    assert "sasl.jaas.config beside the password" in result.stderr  # what the workers' file must hold


def test_strimzi_refers_the_schema_history_secrets_to_the_kubernetes_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    _secured(monkeypatch)
    result = _invoke("--database-url", MARIADB_URL, "--format", "strimzi", "--secret", "dbz", "--namespace", "ns")
    assert result.exit_code == 0, result.output
    assert KAFKA_PASSWORD not in result.output + result.stderr
    config = yaml.safe_load(result.stdout)["spec"]["config"]
    assert config["schema.history.internal.consumer.sasl.jaas.config"] == "${secrets:ns/dbz:sasl.jaas.config}"


def test_mtls_schema_history_clients_use_a_keystore_beside_the_password_file(monkeypatch: pytest.MonkeyPatch) -> None:
    _secured(monkeypatch, PROTOCOL="SSL", SASL_MECHANISM=None, USERNAME=None, PASSWORD=None,
             CERTIFICATE_LOCATION="/etc/kg/relay.pem", KEY_LOCATION="/etc/kg/relay.key")  # fmt: skip
    result = _invoke("--database-url", MARIADB_URL, "--password-file", "/etc/kg/db.properties")
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)["config"]
    assert config["schema.history.internal.producer.security.protocol"] == "SSL"
    assert config["schema.history.internal.producer.ssl.keystore.location"] == "/etc/kg/keystore.pem"
    assert config["schema.history.internal.producer.ssl.keystore.type"] == "PEM"
    assert "PEM keystore /etc/kg/keystore.pem" in result.stderr


def test_no_schema_history_security_on_postgresql_or_a_plaintext_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    _secured(monkeypatch)
    postgres = json.loads(_invoke("--database-url", URL, "--schema", "orders").stdout)["config"]
    assert not [k for k in postgres if k.startswith("schema.history.")]
    for name in ("PROTOCOL", "SASL_MECHANISM", "USERNAME", "PASSWORD", "CA_LOCATION"):
        monkeypatch.delenv(f"KAFKAGUARD_KAFKA_SECURITY__{name}")
    plain = _invoke("--database-url", MARIADB_URL)
    config = json.loads(plain.stdout)["config"]
    assert not [
        k for k in config if k.startswith(("schema.history.internal.producer.", "schema.history.internal.consumer."))
    ]
    assert plain.stderr == ""
