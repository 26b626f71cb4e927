"""How every Kafka client kafkaguard creates connects: TLS, SASL (PLAIN, SCRAM, OAUTHBEARER) or mTLS.

One block, ``[kafka_security]`` in the TOML file or ``KAFKAGUARD_KAFKA_SECURITY__<FIELD>``, applied to
the relay, the publishers, the consumer, the admin client, restore jobs, the DLQ copier, the
transactional forwarder and the Kafka Connect worker (:mod:`kafkaguard.connect_security`). Raw
librdkafka keys in ``producer`` / ``consumer_client`` still win over what :meth:`KafkaSecurity.client_config`
returns.

Guarantees:

- the default (``PLAINTEXT``, nothing set) adds no client setting, so nothing changes for existing users;
- a secret is a :class:`pydantic.SecretStr` or a ``*_file`` read when a client is built (one trailing
  newline stripped, as Kubernetes mounts Secrets): a rotated file is picked up by the next client;
- a contradiction or a missing file raises :class:`~kafkaguard.errors.ConfigurationError` with one
  line naming the setting (paths shown, secret values never).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from kafkaguard.errors import ConfigurationError

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"]

PREFIX = "kafka_security"
_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")
_LOCATIONS = ("ca_location", "certificate_location", "key_location")
_SECRET_PAIRS = (("password", "password_file"), ("oauth_client_secret", "oauth_client_secret_file"))
_SECRET_PAIRS_TLS = (("key_password", "key_password_file"),)


def read_secret_file(path: Path, setting: str) -> str:
    """The secret in ``path`` without one trailing newline; ConfigurationError naming ``setting`` if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"{PREFIX}.{setting}: cannot read {path} ({type(exc).__name__})") from None
    return text.removesuffix("\n").removesuffix("\r")


def import_callback(path: str, setting: str = "oauth_token_callback") -> Callable[..., Any]:
    """The callable named ``module:function``; ConfigurationError (one line) when it cannot be imported."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigurationError(f"{PREFIX}.{setting} is {path!r}; expected 'module:function'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except Exception as exc:  # noqa: BLE001 - any import failure is the same configuration mistake
        raise ConfigurationError(
            f"{PREFIX}.{setting}: cannot import {path!r} ({type(exc).__name__}); check the module is installed"
        ) from None
    if not callable(target):
        raise ConfigurationError(f"{PREFIX}.{setting}: {path!r} is not callable")
    return target  # type: ignore[no-any-return]


class KafkaSecurity(BaseModel):
    """TLS and SASL settings of every Kafka client kafkaguard builds (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: Protocol = Field(
        default="PLAINTEXT", description="security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: Mechanism | None = Field(
        default=None,
        description="sasl.mechanism with a SASL_* protocol: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER",
    )
    username: str | None = Field(default=None, description="PLAIN/SCRAM: the SASL user (Confluent Cloud: API key)")
    password: SecretStr | None = Field(default=None, description="PLAIN/SCRAM: the SASL password (never shown)")
    password_file: Path | None = Field(
        default=None, description="PLAIN/SCRAM: a file holding the password (a mounted Secret), instead of password"
    )
    oauth_token_endpoint_url: str | None = Field(
        default=None, description="OAUTHBEARER/OIDC: the identity provider's token endpoint (client credentials)"
    )
    oauth_client_id: str | None = Field(default=None, description="OAUTHBEARER/OIDC: the client id")
    oauth_client_secret: SecretStr | None = Field(
        default=None, description="OAUTHBEARER/OIDC: the client secret (never shown)"
    )
    oauth_client_secret_file: Path | None = Field(
        default=None, description="OAUTHBEARER/OIDC: a file holding the client secret, instead of oauth_client_secret"
    )
    oauth_scope: str | None = Field(default=None, description="OAUTHBEARER/OIDC: the scope requested, if any")
    oauth_extensions: dict[str, str] | None = Field(
        default=None, description="OAUTHBEARER/OIDC: SASL extensions (e.g. Confluent Cloud logicalCluster)"
    )
    oauth_token_callback: str | None = Field(
        default=None,
        description="OAUTHBEARER: 'module:function' called with sasl.oauthbearer.config, returning "
        "(token, expiry in epoch seconds); librdkafka's oauth_cb, e.g. for Amazon MSK IAM",
    )
    ca_location: Path | None = Field(default=None, description="TLS: CA certificate(s) (PEM) to trust the brokers by")
    certificate_location: Path | None = Field(default=None, description="mTLS: the client certificate (PEM)")
    key_location: Path | None = Field(default=None, description="mTLS: the client's private key (PEM)")
    key_password: SecretStr | None = Field(
        default=None, description="mTLS: the password of an encrypted private key (never shown)"
    )
    key_password_file: Path | None = Field(
        default=None, description="mTLS: a file holding the key password, instead of key_password"
    )
    endpoint_identification: Literal["https", "none"] = Field(
        default="https", description="TLS: check the broker's certificate names its host (https) or not (none)"
    )

    @model_validator(mode="after")
    def _check(self) -> KafkaSecurity:
        problem = self.problem()
        if problem:
            raise ConfigurationError(problem)
        return self

    def problem(self) -> str | None:
        """The first contradiction of these settings as one line, or None."""
        sasl = self.protocol in _SASL
        mech = self.sasl_mechanism
        if sasl and mech is None:
            return f"{PREFIX}.protocol is {self.protocol} but sasl_mechanism is not set"
        if mech is not None and not sasl:
            return f"{PREFIX}.sasl_mechanism is {mech} but protocol is {self.protocol}; use SASL_SSL or SASL_PLAINTEXT"
        for value, file in (*_SECRET_PAIRS, *_SECRET_PAIRS_TLS):
            if getattr(self, value) is not None and getattr(self, file) is not None:
                return f"{PREFIX}: give {value} or {file}, not both"
        if (self.certificate_location is None) != (self.key_location is None):
            return f"{PREFIX}: certificate_location and key_location go together (mTLS); one is not set"
        tls_set = [n for n in (*_LOCATIONS, "key_password", "key_password_file") if getattr(self, n) is not None]
        if tls_set and self.protocol not in _TLS:
            return f"{PREFIX}.{tls_set[0]} is set but protocol is {self.protocol}; use SSL or SASL_SSL"
        no_password = self.password is None and self.password_file is None
        if mech in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (not self.username or no_password):
            return f"{PREFIX}.sasl_mechanism {mech} needs username and password (or password_file)"
        if mech == "OAUTHBEARER":
            oidc = self.oauth_token_endpoint_url and self.oauth_client_id
            oidc_secret = self.oauth_client_secret is not None or self.oauth_client_secret_file is not None
            if self.oauth_token_callback is None and not (oidc and oidc_secret):
                return (
                    f"{PREFIX}.sasl_mechanism OAUTHBEARER needs oauth_token_endpoint_url, oauth_client_id and "
                    "oauth_client_secret (OIDC), or oauth_token_callback"
                )
            callback = self.oauth_token_callback
            if callback is not None and not all(callback.partition(":")[::2]):
                return f"{PREFIX}.oauth_token_callback is {callback!r}; expected 'module:function'"
        return None

    def missing_file(self) -> str | None:
        """The first file setting whose file does not exist, as one line, or None.

        Checked when a client is built (the start of every command that talks to Kafka), not when the
        settings load: a command that never talks to Kafka (``cleanup``, ``config show`` on a laptop)
        runs without the Secret mounted, as a Kubernetes CronJob that mounts none does.
        """
        for name in (*_LOCATIONS, "password_file", "oauth_client_secret_file", "key_password_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).exists():
                return f"{PREFIX}.{name}: {path} does not exist"
        return None

    def secret(self, name: str) -> str | None:
        """The secret ``name`` (``password``, ``oauth_client_secret``, ``key_password``), from its value or its file."""
        value: SecretStr | None = getattr(self, name)
        if value is not None:
            return value.get_secret_value()
        path: Path | None = getattr(self, f"{name}_file")
        return None if path is None else read_secret_file(path, f"{name}_file")

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings for these security settings; ``{}`` for the default (PLAINTEXT, nothing set).

        Secret files are read now. The dict holds secrets in clear: pass it to a client, never show it
        (:func:`kafkaguard.masking.mask` hides them by key).
        """
        if self.protocol == "PLAINTEXT":
            return {}
        missing = self.missing_file()
        if missing:
            raise ConfigurationError(missing)
        config: dict[str, Any] = {"security.protocol": self.protocol}
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            config["sasl.username"] = self.username
            config["sasl.password"] = self.secret("password")
        elif self.sasl_mechanism == "OAUTHBEARER":
            config.update(self._oauth_config())
        if self.protocol in _TLS:
            config["ssl.endpoint.identification.algorithm"] = self.endpoint_identification
            for name, key in (
                ("ca_location", "ssl.ca.location"),
                ("certificate_location", "ssl.certificate.location"),
                ("key_location", "ssl.key.location"),
            ):
                path = getattr(self, name)
                if path is not None:
                    config[key] = str(path)
            key_password = self.secret("key_password")
            if key_password is not None:
                config["ssl.key.password"] = key_password
        return config

    def _oauth_config(self) -> dict[str, Any]:
        if self.oauth_token_callback is not None:
            # librdkafka calls oauth_cb with sasl.oauthbearer.config; no OIDC method then.
            return {"oauth_cb": import_callback(self.oauth_token_callback)}
        config: dict[str, Any] = {
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": self.oauth_client_id,
            "sasl.oauthbearer.client.secret": self.secret("oauth_client_secret"),
            "sasl.oauthbearer.token.endpoint.url": self.oauth_token_endpoint_url,
        }
        if self.oauth_scope:
            config["sasl.oauthbearer.scope"] = self.oauth_scope
        if self.oauth_extensions:
            config["sasl.oauthbearer.extensions"] = ",".join(f"{k}={v}" for k, v in self.oauth_extensions.items())
        return config

    def describe(self) -> str:
        """``protocol`` plus the mechanism, for log lines (``SASL_SSL/SCRAM-SHA-512``); never a secret."""
        return self.protocol if self.sasl_mechanism is None else f"{self.protocol}/{self.sasl_mechanism}"

    def secret_values(self) -> list[str]:
        """Every secret value these settings hold (files read), for tests that grep output for them."""
        found = [self.secret(n) for n in ("password", "oauth_client_secret", "key_password")]
        return [s for s in found if s]


ENV_PREFIX = "KAFKAGUARD_KAFKA_SECURITY__"


def from_environ(environ: Mapping[str, str]) -> KafkaSecurity:
    """The ``KAFKAGUARD_KAFKA_SECURITY__*`` variables of ``environ`` alone, for tools (chaos, bench,
    examples) whose own clients must connect like kafkaguard's workers without reading every setting.

    ``oauth_extensions`` is JSON, as every table in an environment variable. Raises ConfigurationError.
    """
    values: dict[str, Any] = {}
    for name, text in environ.items():
        if name.startswith(ENV_PREFIX):
            field = name[len(ENV_PREFIX) :].lower()
            if field not in KafkaSecurity.model_fields:
                raise ConfigurationError(f"{name} is no setting of {PREFIX}")
            values[field] = json.loads(text) if field == "oauth_extensions" else text
    return KafkaSecurity(**values)
