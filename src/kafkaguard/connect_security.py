"""Kafka Connect / Debezium client properties for :class:`~kafkaguard.kafka_security.KafkaSecurity`, secrets apart.

:func:`connect_security` turns the block into the Java client properties of a Connect worker: the
worker's own clients (``security.protocol``, ``sasl.*``, ``ssl.*``), and the same under ``producer.``,
``consumer.`` and ``admin.`` (the source task's producer, sink consumers, topic creation).
:func:`client_properties` gives one client's properties unprefixed (the MariaDB connector's
schema-history producer and consumer take them under ``schema.history.internal.producer.`` and
``.consumer.``). :func:`database_ssl` turns a libpq URL's TLS query parameters (``sslmode``, ``sslrootcert``,
``sslcert``, ``sslkey``) into the connector's ``database.ssl*`` properties.

Guarantee: no secret value is inline. Secrets (``sasl.jaas.config``, ``ssl.key.password``, the
database password) go into :attr:`ConnectSecurity.secrets`, meant for a properties file of mode 0600
(:func:`secrets_text`); the configuration refers to them through Connect's ``FileConfigProvider``
as ``${file:<secrets file>:<key>}``, which the worker resolves when it starts a client.

Java's PEM support (KIP-651) wants the private key as PKCS#8 (``BEGIN PRIVATE KEY`` or ``BEGIN
ENCRYPTED PRIVATE KEY``); :func:`keystore_pem` refuses a PKCS#1/SEC1 key with the command that
converts it. An OAUTHBEARER token callback (``oauth_token_callback``) is Python and has no Java
counterpart: Connect needs its own login callback handler (e.g. MSK IAM's), refused here with that line.
Kafka 4 also wants the OIDC token endpoint allowed with the JVM property
``-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls=<url>``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from kafkaguard.errors import ConfigurationError
from kafkaguard.kafka_security import KafkaSecurity

FILE_PROVIDER = {
    "config.providers": "file",
    "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
}
CLIENT_PREFIXES = ("", "producer.", "consumer.", "admin.")
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "OAUTHBEARER": "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule",
}
_OIDC_HANDLER = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler"
_PKCS8 = ("-----BEGIN PRIVATE KEY-----", "-----BEGIN ENCRYPTED PRIVATE KEY-----")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class ConnectSecurity:
    """Worker properties (secrets as provider references) and the secrets they refer to."""

    worker: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    keystore: tuple[Path, Path] | None = None
    """(key, certificate) to concatenate into the PEM keystore the worker properties name, for mTLS."""


def _jaas_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def reference(secrets_file: Path, key: str) -> str:
    """``${file:<secrets_file>:<key>}``: a value Connect's FileConfigProvider reads from ``secrets_file``."""
    return "${file:" + str(secrets_file) + ":" + key + "}"


def secrets_reference(namespace: str, secret: str, key: str) -> str:
    """``${secrets:<namespace>/<secret>:<key>}``: a value Strimzi's KubernetesSecretConfigProvider reads
    from a Kubernetes Secret (the worker's service account needs ``get`` on that Secret)."""
    return "${secrets:" + f"{namespace}/{secret}:{key}" + "}"


def connect_security(security: KafkaSecurity, *, secrets_file: Path, keystore_file: Path) -> ConnectSecurity:
    """The worker properties for ``security`` (empty for PLAINTEXT with nothing set).

    ``secrets_file``: where the caller writes :attr:`ConnectSecurity.secrets` (mode 0600);
    ``keystore_file``: where it writes :func:`keystore_pem` for mTLS. Raises ConfigurationError.
    """
    if security.protocol == "PLAINTEXT":
        return ConnectSecurity()
    found = client_properties(security, refer=lambda key: reference(secrets_file, key), keystore_file=keystore_file)
    worker = dict(FILE_PROVIDER)
    for prefix in CLIENT_PREFIXES:
        worker.update({prefix + k: v for k, v in found.worker.items()})
    return ConnectSecurity(worker, found.secrets, found.keystore)


def client_properties(security: KafkaSecurity, *, refer: Callable[[str], str], keystore_file: Path) -> ConnectSecurity:
    """One Java Kafka client's properties for ``security``, unprefixed, in :attr:`ConnectSecurity.worker`
    (empty for PLAINTEXT); each secret's value is ``refer(<its key in secrets>)``, a config-provider
    reference (:func:`reference`, :func:`secrets_reference`), and the secret itself is in
    :attr:`ConnectSecurity.secrets` under that key. ``keystore_file``: the PEM keystore for mTLS
    (:func:`keystore_pem`) as the worker sees it. Raises ConfigurationError.
    """
    if security.protocol == "PLAINTEXT":
        return ConnectSecurity()
    client: dict[str, str] = {"security.protocol": security.protocol}
    secrets: dict[str, str] = {}
    mech = security.sasl_mechanism
    if mech is not None:
        client["sasl.mechanism"] = mech
        options: dict[str, str] = {}
        if mech == "OAUTHBEARER":
            if security.oauth_token_callback is not None:
                raise ConfigurationError(
                    "kafka_security.oauth_token_callback is Python; Kafka Connect needs a Java login callback "
                    "handler (e.g. MSK IAM's IAMClientCallbackHandler) set through its own properties"
                )
            client["sasl.login.callback.handler.class"] = _OIDC_HANDLER
            client["sasl.oauthbearer.token.endpoint.url"] = str(security.oauth_token_endpoint_url)
            options["clientId"] = str(security.oauth_client_id)
            options["clientSecret"] = security.secret("oauth_client_secret") or ""
            if security.oauth_scope:
                options["scope"] = security.oauth_scope
            for name, value in (security.oauth_extensions or {}).items():
                options[f"extension_{name}"] = value
        else:
            options["username"] = str(security.username)
            options["password"] = security.secret("password") or ""
        body = " ".join(f"{k}={_jaas_quote(v)}" for k, v in options.items())
        secrets["sasl.jaas.config"] = f"{_LOGIN_MODULES[mech]} required {body};"
        client["sasl.jaas.config"] = refer("sasl.jaas.config")
    keystore: tuple[Path, Path] | None = None
    if security.protocol in ("SSL", "SASL_SSL"):
        client["ssl.endpoint.identification.algorithm"] = "https" if security.endpoint_identification == "https" else ""
        if security.ca_location is not None:
            client["ssl.truststore.type"] = "PEM"
            client["ssl.truststore.location"] = str(security.ca_location)
        if security.key_location is not None and security.certificate_location is not None:
            keystore = (security.key_location, security.certificate_location)
            client["ssl.keystore.type"] = "PEM"
            client["ssl.keystore.location"] = str(keystore_file)
            key_password = security.secret("key_password")
            if key_password is not None:
                secrets["ssl.key.password"] = key_password
                client["ssl.key.password"] = refer("ssl.key.password")
    return ConnectSecurity(client, secrets, keystore)


def keystore_pem(key: Path, certificate: Path) -> str:
    """The PEM keystore Java reads (KIP-651): the PKCS#8 private key, then the certificate chain."""
    key_text = key.read_text(encoding="ascii")
    if not key_text.lstrip().startswith(_PKCS8):
        raise ConfigurationError(
            f"kafka_security.key_location: {key} is not a PKCS#8 key, which Kafka Connect's PEM keystore "
            f"needs; convert it with `openssl pkcs8 -topk8 -in {key} -out key.pk8.pem` (add -nocrypt if unencrypted)"
        )
    return key_text.rstrip("\n") + "\n" + certificate.read_text(encoding="ascii").rstrip("\n") + "\n"


def database_ssl(database_url: str) -> dict[str, str]:
    """The connector's ``database.sslmode`` / ``sslrootcert`` / ``sslcert`` / ``sslkey`` from the libpq URL's query.

    ``sslmode`` is checked against libpq's values; a missing one leaves Debezium's default (``prefer``).
    pgjdbc reads ``sslkey`` as PKCS#8 (DER ``.pk8``, or PEM in pgjdbc 42.7+).
    """
    query = parse_qs(urlsplit(database_url).query)
    props: dict[str, str] = {}
    for name in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
        values = query.get(name)
        if values:
            props[f"database.{name}"] = values[-1]
    mode = props.get("database.sslmode")
    if mode is not None and mode not in _SSLMODES:
        raise ConfigurationError(f"the database URL's sslmode is {mode!r}; expected one of {', '.join(_SSLMODES)}")
    return props


def secrets_text(secrets: Mapping[str, str]) -> str:
    """``secrets`` as a Java properties file (values escaped as Java's Properties.load reads them)."""

    def escape(value: str) -> str:
        out = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return ("\\" + out) if out.startswith(" ") else out

    return "".join(f"{k}={escape(v)}\n" for k, v in secrets.items())
