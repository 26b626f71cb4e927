"""kafka_security: the librdkafka mapping of each protocol/mechanism, its one-line validation, secrets
read from files at call time, and secrets never shown (explain, repr, exceptions)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kafkaguard.errors import ConfigurationError
from kafkaguard.kafka_security import ENV_PREFIX, KafkaSecurity, from_environ
from kafkaguard.settings import KafkaguardSettings, explain

PASSWORD = "s3cret-Password-value"


def token_callback(config: str) -> tuple[str, float]:
    """An OAUTHBEARER token callback for the tests (librdkafka's oauth_cb shape)."""
    return "token", 0.0


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, Path]:
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    for path in files.values():
        path.write_text("-----BEGIN X-----\n")
    return files


def test_the_default_adds_nothing() -> None:
    assert KafkaSecurity().client_config() == {}
    assert KafkaguardSettings().kafka_producer_overrides() == {}
    assert KafkaguardSettings().kafka_consumer_overrides() == {}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_password_mechanisms(protocol: str, mechanism: str) -> None:
    sec = KafkaSecurity(protocol=protocol, sasl_mechanism=mechanism, username="relay", password=PASSWORD)  # type: ignore[arg-type]
    expected: dict[str, Any] = {
        "security.protocol": protocol,
        "sasl.mechanism": mechanism,
        "sasl.username": "relay",
        "sasl.password": PASSWORD,
    }
    if protocol == "SASL_SSL":
        expected["ssl.endpoint.identification.algorithm"] = "https"
    assert sec.client_config() == expected


def test_mtls(pem: dict[str, Path]) -> None:
    sec = KafkaSecurity(
        protocol="SSL",
        ca_location=pem["ca"],
        certificate_location=pem["cert"],
        key_location=pem["key"],
        key_password=PASSWORD,  # type: ignore[arg-type]
        endpoint_identification="none",
    )
    assert sec.client_config() == {
        "security.protocol": "SSL",
        "ssl.endpoint.identification.algorithm": "none",
        "ssl.ca.location": str(pem["ca"]),
        "ssl.certificate.location": str(pem["cert"]),
        "ssl.key.location": str(pem["key"]),
        "ssl.key.password": PASSWORD,
    }


def test_oauthbearer_oidc() -> None:
    sec = KafkaSecurity(
        protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        oauth_token_endpoint_url="https://idp.example/token",
        oauth_client_id="kafkaguard",
        oauth_client_secret=PASSWORD,  # type: ignore[arg-type]
        oauth_scope="kafka",
        oauth_extensions={"logicalCluster": "lkc-1", "identityPoolId": "pool-2"},
    )
    assert sec.client_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "sasl.oauthbearer.method": "oidc",
        "sasl.oauthbearer.client.id": "kafkaguard",
        "sasl.oauthbearer.client.secret": PASSWORD,
        "sasl.oauthbearer.token.endpoint.url": "https://idp.example/token",
        "sasl.oauthbearer.scope": "kafka",
        "sasl.oauthbearer.extensions": "logicalCluster=lkc-1,identityPoolId=pool-2",
        "ssl.endpoint.identification.algorithm": "https",
    }


def test_oauthbearer_token_callback() -> None:
    sec = KafkaSecurity(
        protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER", oauth_token_callback=f"{__name__}:token_callback"
    )
    config = sec.client_config()
    assert config["oauth_cb"] is token_callback
    assert "sasl.oauthbearer.method" not in config


def test_secrets_are_read_from_files_at_call_time(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("first\n")
    sec = KafkaSecurity(protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", username="u", password_file=secret)
    assert sec.client_config()["sasl.password"] == "first"  # one trailing newline stripped
    secret.write_text("rotated\n\n")
    assert sec.client_config()["sasl.password"] == "rotated\n"  # only one


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"protocol": "SASL_SSL"}, "kafka_security.protocol is SASL_SSL but sasl_mechanism is not set"),
        ({"sasl_mechanism": "PLAIN", "username": "u", "password": "p"}, "sasl_mechanism is PLAIN but protocol"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256", "username": "u"}, "needs username and password"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "password": "p"}, "needs username and password"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"}, "OAUTHBEARER needs oauth_token_endpoint_url"),
        (
            {"protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER", "oauth_token_callback": "nocolon"},
            "expected 'module:function'",
        ),
        ({"ca_location": "__CA__"}, "kafka_security.ca_location is set but protocol is PLAINTEXT"),
        ({"protocol": "SSL", "certificate_location": "__CA__"}, "certificate_location and key_location go together"),
        ({"protocol": "SSL", "key_location": "__CA__"}, "certificate_location and key_location go together"),
        (
            {
                "protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN",
                "username": "u",
                "password": "p",
                "password_file": "__CA__",
            },
            "give password or password_file, not both",
        ),
    ],
)
def test_validation_is_one_line(values: dict[str, Any], message: str, pem: dict[str, Path]) -> None:
    values = {k: str(pem["ca"]) if v == "__CA__" else v for k, v in values.items()}
    with pytest.raises(ConfigurationError) as raised:
        KafkaguardSettings(kafka_security=values)
    text = str(raised.value)
    assert message in text
    assert "\n" not in text


def test_environment_and_toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKAGUARD_KAFKA_SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKAGUARD_KAFKA_SECURITY__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKAGUARD_KAFKA_SECURITY__USERNAME", "relay")
    monkeypatch.setenv("KAFKAGUARD_KAFKA_SECURITY__PASSWORD", PASSWORD)
    assert KafkaguardSettings().kafka_security.client_config()["sasl.password"] == PASSWORD
    monkeypatch.delenv("KAFKAGUARD_KAFKA_SECURITY__PASSWORD")
    toml = tmp_path / "kafkaguard.toml"
    toml.write_text(f'[kafka_security]\npassword = "{PASSWORD}"\n')
    monkeypatch.setenv("KAFKAGUARD_CONFIG", str(toml))
    settings = KafkaguardSettings()
    assert settings.kafka_security.username == "relay"
    assert settings.kafka_security.client_config()["sasl.password"] == PASSWORD


def test_raw_overrides_win() -> None:
    settings = KafkaguardSettings(
        kafka_security={"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "u", "password": PASSWORD},
        producer={"sasl.username": "other", "linger.ms": 1},
        consumer_client={"security.protocol": "SASL_PLAINTEXT"},
    )
    assert settings.kafka_producer_overrides()["sasl.username"] == "other"
    assert settings.kafka_producer_overrides()["linger.ms"] == 1
    assert settings.kafka_consumer_overrides()["security.protocol"] == "SASL_PLAINTEXT"
    assert settings.kafka_consumer_overrides()["sasl.password"] == PASSWORD


def test_from_environ_reads_only_the_block(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {
        "KAFKAGUARD_KAFKA_SECURITY__PROTOCOL": "SASL_SSL",
        "KAFKAGUARD_KAFKA_SECURITY__SASL_MECHANISM": "OAUTHBEARER",
        "KAFKAGUARD_KAFKA_SECURITY__OAUTH_TOKEN_CALLBACK": f"{__name__}:token_callback",
        "KAFKAGUARD_KAFKA_SECURITY__OAUTH_EXTENSIONS": json.dumps({"a": "b"}),
        "KAFKAGUARD_" + "NOT_THIS_BLOCK": "ignored",  # built, so the strict-settings scan does not list it
    }
    assert from_environ(environ).oauth_extensions == {"a": "b"}
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX):
            monkeypatch.setenv(name, value)
    rows = {r.key: r.value for r in explain()[1]}
    assert rows["kafka_security.oauth_token_callback"] == f"{__name__}:token_callback"  # a path, shown
    with pytest.raises(ConfigurationError, match=f"{ENV_PREFIX}NOPE is no setting"):
        from_environ({ENV_PREFIX + "NOPE": "x"})


def _shown(settings: KafkaguardSettings, rows: list[Any]) -> str:
    return "\n".join([repr(rows), str(settings), repr(settings), repr(settings.kafka_security)])


def test_explain_masks_secrets_and_shows_files(tmp_path: Path, pem: dict[str, Path]) -> None:
    secret = tmp_path / "key-password"
    secret.write_text(PASSWORD + "-file\n")
    settings, rows = explain(
        kafka_security={
            "protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "username": "relay",
            "password": PASSWORD,
            "ca_location": str(pem["ca"]),
            "certificate_location": str(pem["cert"]),
            "key_location": str(pem["key"]),
            "key_password_file": str(secret),
        }
    )
    by_key = {r.key: r.value for r in rows}
    assert by_key["kafka_security.password"] == "***"
    assert by_key["kafka_security.key_password_file"] == str(secret)  # where, not what
    assert by_key["kafka_security.username"] == "relay"
    shown = _shown(settings, rows)
    for value in settings.kafka_security.secret_values():
        assert value not in shown


# Any printable text, between markers so that a hit is the secret and not a chance substring of a path.
_secret_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40).map(
    lambda s: f"~{s}~"
)


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=_secret_text, client_secret=_secret_text, key_password=_secret_text)
def test_no_secret_is_ever_shown(password: str, client_secret: str, key_password: str, pem: dict[str, Path]) -> None:
    """Whatever the secret values, explain(), str/repr of the settings and validation errors never contain them."""
    scram = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": "relay", "password": password}
    tls = {"ca_location": str(pem["ca"]), "certificate_location": str(pem["cert"]), "key_location": str(pem["key"])}
    settings, rows = explain(kafka_security={**scram, **tls, "key_password": key_password})
    shown = _shown(settings, rows)
    oidc = {
        "protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "oauth_client_secret": client_secret,
        "oauth_client_id": "id",
    }  # no token endpoint: refused
    for bad in (
        {**scram, "protocol": "SASL_SSL", "sasl_mechanism": None},
        {**scram, "password_file": str(pem["ca"])},
        {**scram, **tls, "key_password": key_password, "protocol": "SASL_PLAINTEXT"},
        oidc,
    ):
        with pytest.raises(ConfigurationError) as raised:
            KafkaguardSettings(kafka_security=bad)
        shown += "\n" + str(raised.value) + repr(raised.value)
    for value in (password, client_secret, key_password):
        assert value not in shown


def test_config_show_json_masks_the_block(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from kafkaguard.cli.app import run

    monkeypatch.setenv("KAFKAGUARD_KAFKA_SECURITY__PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKAGUARD_KAFKA_SECURITY__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKAGUARD_KAFKA_SECURITY__USERNAME", "api-key")
    monkeypatch.setenv("KAFKAGUARD_KAFKA_SECURITY__PASSWORD", PASSWORD)
    monkeypatch.setenv("KAFKAGUARD_PRODUCER", json.dumps({"sasl.password": PASSWORD + "-raw"}))
    assert run(["config", "show", "--json"]) == 0
    out = capsys.readouterr().out
    assert "kafka_security.password" in out and "api-key" in out
    assert PASSWORD not in out
    assert run(["config", "show"]) == 0
    assert PASSWORD not in capsys.readouterr().out


def test_cli_failures_redact_the_blocks_secrets_from_the_environment() -> None:
    from kafkaguard.cli.errors import describe, secrets_of
    from kafkaguard.errors import ConsumerError

    environ = {"KAFKAGUARD_KAFKA_SECURITY__PASSWORD": PASSWORD, "KAFKAGUARD_KAFKA_SECURITY__KEY_PASSWORD": "kp-1234"}
    failure = describe(ConsumerError(f"echoed {PASSWORD} and kp-1234"), secrets_of([], environ))
    assert PASSWORD not in failure.message and "kp-1234" not in failure.message


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"protocol": "SSL", "ca_location": "/no/such/ca.pem"}, "kafka_security.ca_location: /no/such/ca.pem does not"),
        ({"protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "username": "u", "password_file": "/no/pw"}, "/no/pw"),
        (
            {"protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER", "oauth_token_callback": "no_such_mod:fn"},
            "kafka_security.oauth_token_callback: cannot import 'no_such_mod:fn'",
        ),
    ],
)
def test_what_the_machine_lacks_is_one_line_when_a_client_is_built(values: dict[str, Any], message: str) -> None:
    """A missing file or an unimportable callback loads (a command that never talks to Kafka runs
    without the Secret mounted) and is refused, in one line, when a client is built."""
    settings = KafkaSecurity(**values)
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        settings.client_config()
    assert "\n" not in str(caught.value)
