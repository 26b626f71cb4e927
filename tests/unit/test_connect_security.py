"""connect_security: Kafka Connect worker properties and database.ssl* for Debezium, with no secret inline."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from kafkaguard.connect_security import (
    FILE_PROVIDER,
    client_properties,
    connect_security,
    database_ssl,
    keystore_pem,
    reference,
    secrets_text,
)
from kafkaguard.devstack.connect import ConnectWorker
from kafkaguard.errors import ConfigurationError
from kafkaguard.kafka_security import KafkaSecurity
from kafkaguard.relay.debezium import DebeziumOptions, connector_config

PASSWORD = "scram-Pa55word"
KEY_PASSWORD = "key-Pa55word"
DB_PASSWORD = "db-Pa55word"


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, Path]:
    ca, cert, key = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n")
    cert.write_text("-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nKEY\n-----END ENCRYPTED PRIVATE KEY-----\n")
    return {"ca": ca, "cert": cert, "key": key}


def test_plaintext_adds_nothing(tmp_path: Path) -> None:
    out = connect_security(KafkaSecurity(), secrets_file=tmp_path / "s", keystore_file=tmp_path / "k")
    assert out.worker == {} and out.secrets == {} and out.keystore is None


def test_scram_over_tls(tmp_path: Path, tls: dict[str, Path]) -> None:
    secrets = tmp_path / "secrets.properties"
    sec = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        username="connect",
        password=PASSWORD,  # type: ignore[arg-type]
        ca_location=tls["ca"],
    )
    out = connect_security(sec, secrets_file=secrets, keystore_file=tmp_path / "k.pem")
    ref = reference(secrets, "sasl.jaas.config")
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert out.worker[prefix + "security.protocol"] == "SASL_SSL"
        assert out.worker[prefix + "sasl.mechanism"] == "SCRAM-SHA-512"
        assert out.worker[prefix + "sasl.jaas.config"] == ref
        assert out.worker[prefix + "ssl.truststore.type"] == "PEM"
        assert out.worker[prefix + "ssl.truststore.location"] == str(tls["ca"])
        assert out.worker[prefix + "ssl.endpoint.identification.algorithm"] == "https"
    assert out.worker["config.providers.file.class"] == FILE_PROVIDER["config.providers.file.class"]
    assert out.secrets["sasl.jaas.config"] == (
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="connect" password="{PASSWORD}";'
    )
    assert PASSWORD not in json.dumps(out.worker)


def test_plain_mtls_and_key_password(tmp_path: Path, tls: dict[str, Path]) -> None:
    sec = KafkaSecurity(
        protocol="SSL",
        ca_location=tls["ca"],
        certificate_location=tls["cert"],
        key_location=tls["key"],
        key_password=KEY_PASSWORD,  # type: ignore[arg-type]
        endpoint_identification="none",
    )
    out = connect_security(sec, secrets_file=tmp_path / "s.properties", keystore_file=tmp_path / "k.pem")
    assert out.worker["producer.ssl.keystore.type"] == "PEM"
    assert out.worker["admin.ssl.keystore.location"] == str(tmp_path / "k.pem")
    assert out.worker["ssl.key.password"] == reference(tmp_path / "s.properties", "ssl.key.password")
    assert out.worker["ssl.endpoint.identification.algorithm"] == ""
    assert out.keystore == (tls["key"], tls["cert"])
    assert "sasl.mechanism" not in out.worker
    assert KEY_PASSWORD not in json.dumps(out.worker) and out.secrets == {"ssl.key.password": KEY_PASSWORD}
    pem = keystore_pem(*out.keystore)
    assert pem.index("PRIVATE KEY") < pem.index("CLIENT")


def test_keystore_needs_pkcs8(tls: dict[str, Path]) -> None:
    tls["key"].write_text("-----BEGIN RSA PRIVATE KEY-----\nKEY\n")
    with pytest.raises(ConfigurationError, match="not a PKCS#8 key.*openssl pkcs8 -topk8"):
        keystore_pem(tls["key"], tls["cert"])


def test_oauth_oidc_and_callback(tmp_path: Path) -> None:
    sec = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        oauth_token_endpoint_url="https://idp.example/token",
        oauth_client_id="connect",
        oauth_client_secret="oidc-Secret",  # type: ignore[arg-type]
        oauth_scope="kafka",
    )
    out = connect_security(sec, secrets_file=tmp_path / "s", keystore_file=tmp_path / "k")
    assert out.worker["producer.sasl.oauthbearer.token.endpoint.url"] == "https://idp.example/token"
    assert out.worker["sasl.login.callback.handler.class"].endswith("OAuthBearerLoginCallbackHandler")
    assert 'clientSecret="oidc-Secret"' in out.secrets["sasl.jaas.config"]
    assert "oidc-Secret" not in json.dumps(out.worker)
    callback = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        oauth_token_callback="tests.unit.test_kafka_security_clients:token_callback",
    )
    with pytest.raises(ConfigurationError, match="Java login callback handler"):
        connect_security(callback, secrets_file=tmp_path / "s", keystore_file=tmp_path / "k")


def test_database_ssl_from_the_libpq_url() -> None:
    url = (
        "postgresql+psycopg://u:pw@db:5432/app?sslmode=verify-full&sslrootcert=/certs/ca.pem"
        "&sslcert=/certs/client.pem&sslkey=/certs/client.pk8"
    )
    assert database_ssl(url) == {
        "database.sslmode": "verify-full",
        "database.sslrootcert": "/certs/ca.pem",
        "database.sslcert": "/certs/client.pem",
        "database.sslkey": "/certs/client.pk8",
    }
    assert database_ssl("postgresql://u@db/app") == {}
    with pytest.raises(ConfigurationError, match="sslmode is 'sometimes'"):
        database_ssl("postgresql://u@db/app?sslmode=sometimes")
    config = connector_config(DebeziumOptions(database_url=url))["config"]
    assert config["database.sslmode"] == "verify-full"


def test_secrets_text_escapes_like_java_properties() -> None:
    assert secrets_text({"a": " lead\\back\nline"}) == "a=\\ lead\\\\back\\nline\n"


def test_worker_files_hold_no_secret_inline(tmp_path: Path, tls: dict[str, Path]) -> None:
    """The generated worker.properties and connector.json refer to every secret; only secrets.properties
    (0600) holds them, and the keystore PEM is 0600 too."""
    sec = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        username="connect",
        password=PASSWORD,  # type: ignore[arg-type]
        ca_location=tls["ca"],
        certificate_location=tls["cert"],
        key_location=tls["key"],
        key_password=KEY_PASSWORD,  # type: ignore[arg-type]
    )
    worker = ConnectWorker(tmp_path / "connect", "b:9093", 1, tmp_path, tmp_path, security=sec)
    secrets = worker._write_worker()
    connector = connector_config(DebeziumOptions(database_url=f"postgresql://u:{DB_PASSWORD}@db/app?sslmode=require"))
    worker._write_connector(connector, secrets)
    text = worker.worker_file.read_text() + worker.connector_file.read_text()
    for value in (PASSWORD, KEY_PASSWORD, DB_PASSWORD):
        assert value not in text
        assert value in worker.secrets_file.read_text()
    assert "${file:" + str(worker.secrets_file) + ":database.password}" in worker.connector_file.read_text()
    assert json.loads(worker.connector_file.read_text())["config"]["database.sslmode"] == "require"
    for path in (worker.secrets_file, worker.keystore_file, worker.connector_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _jaas_value(line: str, name: str) -> str:
    """``name="..."`` of a JAAS line, unescaped as Java's JAAS parser reads it."""
    import re

    found = re.search(name + r'="((?:[^"\\]|\\.)*)"', line)
    assert found is not None, line
    return re.sub(r"\\(.)", r"\1", found.group(1))


@given(user=st.text(min_size=1, max_size=30), secret=st.text(max_size=30))
def test_any_sasl_credentials_reach_the_schema_history_only_as_references(user: str, secret: str) -> None:
    """The MariaDB connector's schema-history clients on a secured cluster: whatever the user name
    and password (quotes, backslashes, newlines, any Unicode), the configuration holds references
    only, and the JAAS line in the secrets gives both back exactly."""
    password = f"⟦{secret}⟧"  # brackets no generated configuration value contains otherwise
    try:
        sec = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username=user, password=password)  # type: ignore[arg-type]
    except ValidationError:
        assume(False)  # the settings refuse it in one line before any configuration is made
    found = client_properties(sec, refer=lambda key: reference(Path("/etc/kg/db.properties"), key),
                              keystore_file=Path("/etc/kg/keystore.pem"))  # fmt: skip
    opts = DebeziumOptions(
        "mysql+pymysql://kg@maria:3306/orders", bootstrap="k:9093", history_client=tuple(found.worker.items())
    )
    config = connector_config(opts, password_reference=reference(Path("/etc/kg/db.properties"), "password"))
    assert password not in json.dumps(config, ensure_ascii=False)
    for client in ("producer", "consumer"):
        assert config["config"][f"schema.history.internal.{client}.sasl.jaas.config"] == (
            "${file:/etc/kg/db.properties:sasl.jaas.config}"
        )
    line = found.secrets["sasl.jaas.config"]
    assert (_jaas_value(line, "username"), _jaas_value(line, "password")) == (user, password)
