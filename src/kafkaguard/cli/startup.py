"""What a worker command (``relay``, ``consume``, ``forward``) says and checks before it starts.

1. :func:`announce`: one line naming what it connects to: the bootstrap servers, the database's
   host, port, name, user and schema (never the password), the consumer group and the topics;
   so a typo'd variable or someone else's broker is visible in the first line of the log.
2. :func:`preflight`: log in to PostgreSQL once (a refused login raises
   :class:`~kafkaguard.errors.AuthenticationError`: fatal, one line, exit 1; an unreachable server
   is an outage the worker rides out, so it only warns), then wait until Kafka answers, one line
   per interval while it does not (:func:`~kafkaguard.transports.kafka_probe.wait_for_kafka`; a
   refused SASL login is fatal too). The consumer skips that wait: its own client reports the
   same way (:mod:`kafkaguard.transports.kafka_logging`) and raises on refused credentials.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import make_url

from kafkaguard.db.engine import MARIADB_BACKENDS, is_mariadb, libpq_conninfo, mariadb_connect_kwargs
from kafkaguard.db.login import MARIADB_LOGIN_REFUSALS, check_login, mariadb_login_refused
from kafkaguard.errors import ConfigurationError
from kafkaguard.log_json import LogFormat
from kafkaguard.log_json import configure as configure_log_output
from kafkaguard.stores.mongo_documents import is_mongo_url
from kafkaguard.transports.kafka_probe import wait_for_kafka as kafka_ready

log = logging.getLogger("kafkaguard.startup")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
"""The format of every worker command's log lines."""


def configure_logging(level: str, log_format: str | None = None) -> None:
    """Log lines at ``level`` and above to stderr (librdkafka's included): :data:`LOG_FORMAT` text
    lines, or JSON documents (:mod:`kafkaguard.log_json`) when ``log_format`` (default
    ``KAFKAGUARD_LOG_FORMAT``, else ``text``) is ``json``."""
    chosen = (log_format or os.environ.get("KAFKAGUARD_LOG_FORMAT") or "text").lower()
    try:
        fmt = LogFormat(chosen)
    except ValueError:
        raise ConfigurationError(f"log format {chosen!r} is not one of: text, json") from None
    configure_log_output(level, fmt, LOG_FORMAT)


def database_label(url: str) -> str:
    """What ``url`` names, for the banners: ``PostgreSQL``, ``MariaDB`` or ``MongoDB`` (a document
    store); ``database`` for a URL that cannot be parsed (reported where it is used: a banner never fails)."""
    if is_mongo_url(url):
        return "MongoDB"
    try:
        return "MariaDB" if url and is_mariadb(url) else "PostgreSQL"
    except ConfigurationError:
        return "database"


def database_target(url: str, schema: str | None) -> str:
    """``host:port/db as user, schema s`` for ``url`` (never the password); ``(none)`` without a URL.
    On MariaDB, where a schema is a database: ``host:port as user, database d``."""
    if not url:
        return "(none)"
    # host:port/database: what follows the last "@", which the credentials never do (an "@" in the
    # options shows less of the address, never the password)
    if is_mongo_url(url):
        where = url.split("://", 1)[-1].rpartition("@")[2]
        return where.split("?", 1)[0]
    unparsed = "(a URL that cannot be parsed)"
    try:
        u = make_url(url)
        port = u.port  # a port that is not a number fails here
    except Exception:  # noqa: BLE001 - a bad URL is reported where it is used; the banner must not fail
        return unparsed
    # Credentials the parser could not split off (a "/" in the user name: no user found although the
    # URL has an "@"; an "@" in the password: the rest lands in the host) would show the password in
    # the host, database or options: such a URL is not shown at all.
    if ("@" in url and u.username is None) or any("@" in part for part in (u.host or "", u.database or "")):
        return unparsed
    user = f" as {u.username}" if u.username else ""
    if u.get_backend_name() in MARIADB_BACKENDS:  # a schema is a database there: name the one used
        database = schema if schema and schema != "public" else u.database
        return f"{u.host or 'localhost'}:{port or 3306}{user}, database {database or '(none)'}"
    where = f"{u.host or 'localhost'}:{port or 5432}/{u.database or ''}{user}"
    if schema is None:  # the URL may choose it: ?options=-csearch_path%3Dname
        options = u.query.get("options")
        found = re.search(r"search_path=([^\s,@]+)", options if isinstance(options, str) else "")
        schema = found.group(1) if found else None
    return f"{where}, schema {schema or '(search_path)'}"


def announce(
    what: str,
    *,
    bootstrap: str,
    database_url: str = "",
    schema: str | None = None,
    group: str | None = None,
    topics: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Log once which Kafka, database, group and topics ``what`` (``relay``, ``consumer``, ...) uses."""
    parts = [f"Kafka {bootstrap}"]
    if database_url or schema:
        parts.append(f"{database_label(database_url)} {database_target(database_url, schema)}")
    if group is not None:
        parts.append(f"group {group}")
    if topics:
        parts.append(f"topics {', '.join(topics)}")
    parts.extend(f"{key} {value}" for key, value in (extra or {}).items())
    log.info("%s starting: %s", what, "; ".join(parts))


def preflight(
    what: str,
    *,
    bootstrap: str,
    database_url: str = "",
    schema: str | None = None,
    kafka_overrides: Mapping[str, Any] | None = None,
    stop: threading.Event | None = None,
    wait_for_kafka: bool = True,
) -> bool:
    """Check the database login, then (unless not ``wait_for_kafka``: a consumer's own client does
    it) wait for Kafka; False when ``stop`` was set while waiting.

    Raises :class:`~kafkaguard.errors.AuthenticationError` when PostgreSQL or Kafka refuses the credentials.
    """
    if database_url and not is_mongo_url(database_url):  # a document store is pinged when its store is built
        unreachable = _check_database_login(database_url, schema)
        if unreachable is not None:
            log.warning(
                "%s at %s cannot be reached now (%s); the %s starts and retries",
                database_label(database_url),
                database_target(database_url, schema),
                unreachable,
                what,
            )
    if not wait_for_kafka:
        return True
    brokers = kafka_ready(bootstrap, kafka_overrides, client=what, stop=stop)
    if brokers is None:
        return False
    log.info("Kafka at %s answers (%d broker%s)", bootstrap, brokers, "" if brokers == 1 else "s")
    return True


def _check_database_login(url: str, schema: str | None) -> str | None:
    """None when the database accepts the login; the reason it cannot be reached now otherwise.

    Raises :class:`~kafkaguard.errors.AuthenticationError` when it refuses the credentials.
    """
    if not is_mariadb(url):
        return check_login(libpq_conninfo(url, schema=schema))
    import pymysql  # the mariadb extra

    kwargs = {**mariadb_connect_kwargs(url, schema=schema), "connect_timeout": 5}
    try:
        pymysql.connect(**kwargs).close()
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        if code in MARIADB_LOGIN_REFUSALS:
            raise mariadb_login_refused(kwargs, code) from None
        return f"{code} {type(exc).__name__}"
    return None
