"""``kafkaguard debezium config``: the connector configuration kafkaguard generates, for a Connect cluster.

Two forms, both with the database password as a Connect config-provider reference, never inline:

- ``json``: the body of Connect's REST API (``{"name": ..., "config": {...}}``), for
  ``PUT /connectors/<name>/config`` (its ``config``) or ``POST /connectors`` (the whole body). The
  password is ``${file:<password file>:<key>}``: every worker needs ``config.providers=file``
  (FileConfigProvider) and that properties file, holding ``<key>=<password>``, readable by it.
- ``strimzi``: a ``KafkaConnector`` resource (``kafka.strimzi.io/v1beta2``) for the ``KafkaConnect``
  cluster named by ``--cluster``. The password is ``${secrets:<namespace>/<secret>:<key>}``, read by
  Strimzi's KubernetesSecretConfigProvider from a Kubernetes Secret (no file on the pods), or with
  ``--provider file`` a ``${file:...}`` reference to a Secret mounted into the pods.

The URL picks the connector: PostgreSQL's (a replication slot) or MariaDB's (the binlog; its schema
history goes to a topic on ``bootstrap_servers`` from the settings, and ``--schema`` names the database).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from kafkaguard.cli.common import load_settings
from kafkaguard.connect_security import client_properties, reference, secrets_reference
from kafkaguard.db.engine import dialect_name
from kafkaguard.errors import ConfigurationError
from kafkaguard.relay.debezium import DebeziumOptions, connector_config
from kafkaguard.settings import KafkaguardSettings

debezium_app = typer.Typer(
    help="Debezium on your Kafka Connect cluster: the connector configuration kafkaguard generates.",
    no_args_is_help=True,
)

DEFAULT_PASSWORD_FILE = Path("/opt/kafka/external-configuration/kafkaguard/db.properties")
"""Where a Strimzi ``externalConfiguration`` volume named ``kafkaguard`` mounts a Secret's files."""
STRIMZI_API = "kafka.strimzi.io/v1beta2"
_K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class Format(StrEnum):
    JSON = "json"
    STRIMZI = "strimzi"


class Provider(StrEnum):
    FILE = "file"
    SECRETS = "secrets"


def password_reference(
    provider: Provider, *, password_file: Path, key: str, namespace: str, secret: str
) -> str:  # fmt: skip
    """The ``database.password`` value: a FileConfigProvider or KubernetesSecretConfigProvider reference."""
    if provider is Provider.FILE:
        return reference(password_file, key)
    return secrets_reference(namespace, secret, key)


def rest_body(opts: DebeziumOptions, password_ref: str) -> dict[str, Any]:
    """The body for Connect's REST API: the connector's name and configuration, the password a reference."""
    return connector_config(opts, password_reference=password_ref)


def strimzi_connector(opts: DebeziumOptions, password_ref: str, *, cluster: str, namespace: str) -> dict[str, Any]:
    """A Strimzi ``KafkaConnector`` resource: ``connector.class`` and ``tasks.max`` become ``spec.class``
    and ``spec.tasksMax`` (Strimzi refuses them in ``spec.config``), the name ``metadata.name``."""
    body = rest_body(opts, password_ref)
    name = str(body["name"])
    if not _K8S_NAME.match(name):
        raise ConfigurationError(
            f"the connector name {name!r} is no Kubernetes resource name (lowercase letters, digits, '-', '.'); "
            "pass --name"
        )
    config = dict(body["config"])
    connector_class = config.pop("connector.class")
    tasks_max = int(config.pop("tasks.max"))
    return {
        "apiVersion": STRIMZI_API,
        "kind": "KafkaConnector",
        "metadata": {"name": name, "namespace": namespace, "labels": {"strimzi.io/cluster": cluster}},
        "spec": {"class": connector_class, "tasksMax": tasks_max, "config": config},
    }


def _yaml_lines(data: dict[str, Any], indent: int = 0) -> list[str]:
    """Block-style YAML of nested mappings whose leaves are strings and ints (strings JSON-quoted,
    which YAML reads as double-quoted scalars: ``${...}``, ``:`` and ``*`` need no other care)."""
    lines: list[str] = []
    pad = "  " * indent
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{json.dumps(key)}:" if not _plain_key(key) else f"{pad}{key}:")
            lines.extend(_yaml_lines(value, indent + 1))
        else:
            shown = str(value) if isinstance(value, int) else json.dumps(value)
            lines.append(f"{pad}{key if _plain_key(key) else json.dumps(key)}: {shown}")
    return lines


def _plain_key(key: str) -> bool:
    return re.fullmatch(r"[A-Za-z][A-Za-z0-9._/-]*", key) is not None


def strimzi_yaml(resource: dict[str, Any], provider: Provider, *, password_file: Path, key: str, secret: str) -> str:
    """The resource as YAML, with comments naming what the ``KafkaConnect`` cluster needs for the reference."""
    cluster = resource["metadata"]["labels"]["strimzi.io/cluster"]
    namespace = resource["metadata"]["namespace"]
    head = [
        f"# Generated by `kafkaguard debezium config --format strimzi`. The KafkaConnect resource {cluster!r} needs",
        '# the annotation strimzi.io/use-connector-resources: "true" and, in spec.config:',
    ]
    if provider is Provider.SECRETS:
        head += [
            "#   config.providers: secrets",
            "#   config.providers.secrets.class: io.strimzi.kafka.KubernetesSecretConfigProvider",
            f"# and a Role + RoleBinding letting its service account ({cluster}-connect) get the Secret {secret!r}",
            f"# in namespace {namespace!r}, whose key {key!r} holds the database password.",
        ]
    else:
        head += [
            "#   config.providers: file",
            "#   config.providers.file.class: org.apache.kafka.common.config.provider.FileConfigProvider",
            f"# and a Secret mounted so that {password_file} on every pod holds the line {key}=<password>.",
        ]
    return "\n".join([*head, "---", *_yaml_lines(resource)]) + "\n"


def _history_client(
    settings: KafkaguardSettings, *, refer: Callable[[str], str], keystore_file: Path
) -> tuple[tuple[str, str], ...]:
    """The MariaDB connector's schema-history client properties for ``settings.kafka_security`` (none
    on PostgreSQL or a plaintext cluster); says on stderr which keys the worker's file or Secret must
    hold (names only: the values are the caller's secrets)."""
    if dialect_name(str(settings.database_url)) != "mariadb" or settings.kafka_security.protocol == "PLAINTEXT":
        return ()
    found = client_properties(settings.kafka_security, refer=refer, keystore_file=keystore_file)
    needs = [f"the keys {', '.join(sorted(found.secrets))} beside the password"] if found.secrets else []
    if found.keystore is not None:
        needs.append(f"the PEM keystore {keystore_file} (the private key as PKCS#8, then the certificate)")
    if needs:
        typer.echo("schema history on a secured cluster: the workers need " + " and ".join(needs), err=True)
    return tuple(found.worker.items())


FormatOpt = Annotated[Format, typer.Option("--format", help="json: Connect's REST body; strimzi: a KafkaConnector.")]


@debezium_app.command("config")
def config(
    schema: Annotated[str | None, typer.Option("--schema", help="Schema whose outbox Debezium relays.")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Database URL \\[env KAFKAGUARD_DATABASE_URL].")
    ] = None,
    fmt: FormatOpt = Format.JSON,
    name: Annotated[str | None, typer.Option("--name", help="Connector name (kafkaguard-outbox-<schema>).")] = None,
    provider: Annotated[
        Provider | None,
        typer.Option(help="Config provider of the password reference (json: file; strimzi: secrets)."),
    ] = None,
    password_file: Annotated[
        Path, typer.Option(help="file provider: the properties file on every worker holding the password.")
    ] = DEFAULT_PASSWORD_FILE,
    password_key: Annotated[str, typer.Option(help="Key of the password in that file or Secret.")] = "password",  # noqa: S107 - a key name
    secret: Annotated[str, typer.Option(help="secrets provider: the Kubernetes Secret's name.")] = "kafkaguard-db",  # noqa: S107 - a name
    namespace: Annotated[str, typer.Option(help="strimzi: the namespace of the resource and Secret.")] = "kafka",
    cluster: Annotated[str, typer.Option(help="strimzi: the KafkaConnect resource (strimzi.io/cluster).")] = "connect",
    keystore_file: Annotated[
        Path | None,
        typer.Option(
            help="MariaDB with mTLS: the PEM keystore (key, then certificate) on every worker for the "
            "schema-history clients [default: keystore.pem beside --password-file]."
        ),
    ] = None,
) -> None:
    """Print the Debezium connector configuration for SCHEMA's outbox, the password a config-provider reference.

    PostgreSQL or MariaDB by the URL (on MariaDB SCHEMA is the database, the URL's by default).
    Topic pattern, partitions and replication come from the settings ([topics]), as for kafkaguard's relay.
    On MariaDB with a secured kafka_security block, the schema history's producer and consumer get its
    client properties, secrets as references to keys of the same file or Secret as the password.
    """
    settings = load_settings(database_url, schema)
    if not settings.database_url:
        raise ConfigurationError("no database URL: pass --database-url or set KAFKAGUARD_DATABASE_URL")
    chosen = provider or (Provider.FILE if fmt is Format.JSON else Provider.SECRETS)

    def refer(key: str) -> str:  # a secret's reference: a key of the same file or Secret as the password
        return password_reference(chosen, password_file=password_file, key=key, namespace=namespace, secret=secret)

    ref = refer(password_key)
    keystore = keystore_file or password_file.parent / "keystore.pem"
    history = _history_client(settings, refer=refer, keystore_file=keystore)
    opts = DebeziumOptions(
        history_client=history,
        database_url=settings.database_url,
        schema=settings.db_schema or "public",
        topic_pattern=settings.topics.pattern,
        name=name,
        partitions=settings.topics.partitions,
        replication=settings.topics.replication,
        bootstrap=settings.bootstrap_servers,
    )
    if fmt is Format.JSON:
        typer.echo(json.dumps(rest_body(opts, ref), indent=2))
        return
    resource = strimzi_connector(opts, ref, cluster=cluster, namespace=namespace)
    typer.echo(strimzi_yaml(resource, chosen, password_file=password_file, key=password_key, secret=secret), nl=False)
