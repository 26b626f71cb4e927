"""The secured dev stack's Kafka side: listeners, SCRAM users, the authorizer and the ACLs.

Each broker has two client listeners and no plaintext one:

- ``SASL_SSL`` (SCRAM-SHA-512 over TLS) on ``sasl_port``;
- ``SSL`` with ``ssl.client.auth=required`` (mTLS) on ``port``, which is also the inter-broker
  listener (the brokers authenticate to each other with their certificates, ``User:broker``);

and the KRaft controller listener is mTLS too, so no port takes an unauthenticated client. The
``StandardAuthorizer`` denies what no ACL allows (``allow.everyone.if.no.acl.found=false``); super
users are the brokers and ``admin`` (the tooling's own principal, which creates the ACLs).
``ssl.principal.mapping.rules`` turns ``CN=relay`` into ``User:relay``, so a principal's ACLs hold
whichever way it authenticates. SCRAM users are created by Kafka's own ``kafka-storage format
--add-scram`` when a node is formatted; their passwords are generated once into
``<run dir>/secrets/<principal>.password`` (0600).

ACLs (created idempotently with the Admin API as ``admin``), for topic prefix ``P`` (default
``outbox.event.``) and group prefix ``G`` (default ``kafkaguard``):

- ``relay``: WRITE, CREATE, DESCRIBE, DESCRIBE_CONFIGS (for ``max.message.bytes``) on topics
  ``P*`` (idempotent producers need nothing more since
  Kafka 3.0); DENY WRITE on the topic :data:`DENIED_TOPIC`;
- ``consumer``: READ, DESCRIBE on topics ``P*``, and WRITE, CREATE there for its ``<topic>.dlq``
  copies (Kafka ACLs have no suffix patterns); READ on groups ``G*``; WRITE, DESCRIBE on
  transactional ids ``G*`` (the forwarder);
  DENY READ on the topic :data:`UNREADABLE_TOPIC`;
- ``operator``: every operation on every topic, group and transactional id (restore jobs,
  dead-letter commands, replays).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkaguard.devstack.certs import CertificateAuthority, Credential

PRINCIPALS = ("relay", "consumer", "operator")
MECHANISM = "SCRAM-SHA-512"
DENIED_TOPIC = "outbox.event.forbidden"
UNREADABLE_TOPIC = "outbox.event.unreadable"
TOPIC_PREFIX = "outbox.event."
GROUP_PREFIX = "kafkaguard"
_ADMIN = "admin"
_BROKER = "broker"


@dataclass(frozen=True)
class Material:
    """Everything on disk a secured stack needs: the CA, the credentials and the SCRAM passwords."""

    folder: Path

    @property
    def authority(self) -> CertificateAuthority:
        return CertificateAuthority(self.folder)

    @property
    def ca_file(self) -> Path:
        return self.authority.ca_file

    def credential(self, name: str, *, server: bool = False) -> Credential:
        return self.authority.issue(name, server=server)

    def password_file(self, principal: str) -> Path:
        return self.folder / f"{principal}.password"

    def password(self, principal: str) -> str:
        path = self.password_file(principal)
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(24) + "\n")
            path.chmod(0o600)
        return path.read_text().strip()

    def ensure(self) -> None:
        """Generate the CA, the broker, admin and principal credentials and passwords (once)."""
        self.credential(_BROKER, server=True)
        self.credential("postgres", server=True)
        for name in (*PRINCIPALS, _ADMIN):
            self.credential(name)
        for name in (*PRINCIPALS, _ADMIN):
            self.password(name)

    def scram_arguments(self) -> list[str]:
        """``--add-scram`` options of ``kafka-storage format`` creating every principal's SCRAM user."""
        out: list[str] = []
        for name in (*PRINCIPALS, _ADMIN):
            out += ["--add-scram", f"{MECHANISM}=[name={name},password={self.password(name)}]"]
        return out

    def broker_properties(
        self, *, ssl_port: int, sasl_port: int, controller_port: int, advertised_sasl_port: int | None = None
    ) -> dict[str, str]:
        """The listener, TLS, SASL and authorizer properties of one broker (``advertised_sasl_port``:
        where SCRAM clients are sent, e.g. a proxy in front; default ``sasl_port``)."""
        broker = self.credential(_BROKER, server=True)
        return {
            "listeners": (
                f"SSL://127.0.0.1:{ssl_port},SASL_SSL://127.0.0.1:{sasl_port},CONTROLLER://127.0.0.1:{controller_port}"
            ),
            "advertised.listeners": (
                f"SSL://127.0.0.1:{ssl_port},SASL_SSL://127.0.0.1:{advertised_sasl_port or sasl_port}"
            ),
            "inter.broker.listener.name": "SSL",
            "listener.security.protocol.map": "SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(broker.pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.client.auth": "required",
            "listener.name.sasl_ssl.ssl.client.auth": "none",
            "ssl.endpoint.identification.algorithm": "https",
            "sasl.enabled.mechanisms": MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+).*$/$1/,DEFAULT",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{_BROKER};User:{_ADMIN}",
        }

    def client(self, principal: str, mechanism: str) -> dict[str, str]:
        """librdkafka settings for ``principal`` over ``scram`` (SASL_SSL) or ``mtls`` (SSL)."""
        if mechanism == "scram":
            return {
                "security.protocol": "SASL_SSL",
                "sasl.mechanism": MECHANISM,
                "sasl.username": principal,
                "sasl.password": self.password(principal),
                "ssl.ca.location": str(self.ca_file),
            }
        if mechanism == "mtls":
            cred = self.credential(principal)
            return {
                "security.protocol": "SSL",
                "ssl.ca.location": str(self.ca_file),
                "ssl.certificate.location": str(cred.certificate),
                "ssl.key.location": str(cred.key),
            }
        raise ValueError(f"mechanism must be scram or mtls, not {mechanism!r}")

    def admin_client(self) -> dict[str, str]:
        """The tooling's own super-user settings (mTLS as ``admin``)."""
        return self.client(_ADMIN, "mtls")


def ensure_acls(admin: Any, *, topic_prefix: str = TOPIC_PREFIX, group_prefix: str = GROUP_PREFIX) -> None:
    """Create the ACLs of the module docstring (creating an existing binding is a no-op)."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]  # only the secured stack needs them
        AclBinding,
        AclOperation,
        AclPermissionType,
        ResourcePatternType,
        ResourceType,
    )

    allow, deny = AclPermissionType.ALLOW, AclPermissionType.DENY
    prefixed, literal = ResourcePatternType.PREFIXED, ResourcePatternType.LITERAL
    topic, group, txn = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
    rules: list[tuple[str, Any, str, Any, Any, Any]] = [
        *[
            ("relay", topic, topic_prefix, prefixed, op, allow)
            for op in ("WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS")  # configs: max.message.bytes
        ],
        ("relay", topic, DENIED_TOPIC, literal, "WRITE", deny),
        *[("consumer", topic, topic_prefix, prefixed, op, allow) for op in ("READ", "DESCRIBE", "WRITE", "CREATE")],
        ("consumer", group, group_prefix, prefixed, "READ", allow),
        *[("consumer", txn, group_prefix, prefixed, op, allow) for op in ("WRITE", "DESCRIBE")],
        ("consumer", topic, UNREADABLE_TOPIC, literal, "READ", deny),
        *[("operator", kind, "*", literal, "ALL", allow) for kind in (topic, group, txn)],
    ]
    bindings = [
        AclBinding(kind, name, pattern, f"User:{principal}", "*", getattr(AclOperation, op), permission)
        for principal, kind, name, pattern, op, permission in rules
    ]
    for future in admin.create_acls(bindings, request_timeout=15).values():
        future.result(timeout=30)
