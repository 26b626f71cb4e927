"""pytest fixtures on the real Kafka and PostgreSQL.

Load with ``pytest_plugins = ["kafkaguard.testing.fixtures"]`` in a ``conftest.py``.

- ``kafka_bootstrap`` / ``postgres`` (session): one broker and one PostgreSQL for the session.
- ``topics`` (function): a factory of fresh topics, named uniquely for the test and deleted after.
- ``database`` (function): a fresh schema; its ``url`` sets ``search_path`` to it.
- ``migrated_database`` (function): the same with kafkaguard's tables created.
- ``kafka_cluster3`` (module): a dedicated 3-node cluster (RF 3, min ISR 2) that tests may break.
- ``dedicated_kafka`` / ``dedicated_postgres`` (function): servers that a test may stop or kill.
- ``mariadb`` (session): one MariaDB server for the session (the dev stack's with
  ``KAFKAGUARD_TEST_REUSE_STACK=1``); ``mariadb_database`` / ``migrated_mariadb_database``
  (function): a fresh database on it, dropped after.
- ``ferretdb`` (session): a FerretDB server (MongoDB wire protocol); ``mongo_database``
  (function): a pymongo ``Database`` of its own on it, dropped after.
- ``store_database`` (function, parametrised ``postgresql`` | ``mariadb``): a migrated database of
  either kind with the same ``url`` / ``schema`` / ``dialect``, for suites that run on both.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from kafkaguard.db import migrate
from kafkaguard.devstack.ferretdb import FerretDbServer
from kafkaguard.devstack.kafka import KafkaCluster
from kafkaguard.devstack.mariadb import MariaDbServer
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.testing import stacks
from kafkaguard.transports.kafka_admin import delete_topics, ensure_topics

if TYPE_CHECKING:
    import pymysql


@pytest.fixture(scope="session")
def _session_stack() -> Iterator[tuple[str, PostgresServer]]:
    with stacks.session_stack() as stack:
        yield stack


@pytest.fixture(scope="session")
def kafka_bootstrap(_session_stack: tuple[str, PostgresServer]) -> str:
    """Bootstrap servers of the session's broker."""
    return _session_stack[0]


@pytest.fixture(scope="session")
def postgres(_session_stack: tuple[str, PostgresServer]) -> PostgresServer:
    """The session's PostgreSQL server."""
    return _session_stack[1]


@dataclass
class TopicFactory:
    """Creates topics named ``<prefix>.<name>`` on a bootstrap; remembers them for cleanup."""

    bootstrap: str
    prefix: str
    replication: int = 1
    created: list[str] = field(default_factory=list)

    def __call__(self, name: str = "events", *, partitions: int = 3) -> str:
        topic = f"{self.prefix}.{name}"
        ensure_topics(self.bootstrap, [topic], partitions=partitions, replication=self.replication)
        self.created.append(topic)
        return topic


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[TopicFactory]:
    """Factory of fresh topics for this test on the session broker."""
    factory = TopicFactory(kafka_bootstrap, f"t{uuid.uuid4().hex[:10]}")
    yield factory
    delete_topics(kafka_bootstrap, factory.created)


@dataclass(frozen=True)
class TestDatabase:
    """A schema of the session database reserved for one test."""

    __test__ = False  # not a test class, despite the name

    server: PostgresServer
    schema: str
    dialect: str = "postgresql"

    @property
    def url(self) -> str:
        """SQLAlchemy URL whose connections use this schema first."""
        return f"{self.server.url()}?options=-csearch_path%3D{self.schema}"

    @property
    def conninfo(self) -> str:
        """libpq connection string whose connections use this schema first."""
        return f"{self.server.conninfo()} options=-csearch_path={self.schema}"

    def relay_shard_owners(self) -> list[int]:
        """Outbox shards held per relay connection of this schema (sorted counts; ``[]``: no relay)."""
        with psycopg.connect(self.conninfo) as conn:
            rows = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND granted"
                " AND classid::bigint = (hashtext('kafkaguard.relay:' || %s) & 2147483647) GROUP BY pid",
                (self.schema,),
            ).fetchall()
        return sorted(int(r[0]) for r in rows)


@pytest.fixture
def database(postgres: PostgresServer) -> Iterator[TestDatabase]:
    """A fresh schema in the session database, dropped after the test."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield TestDatabase(postgres, schema)
    with psycopg.connect(postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def migrated_database(database: TestDatabase) -> TestDatabase:
    """A fresh schema with kafkaguard's migrations applied (outbox, dead letters, inbox)."""
    migrate.upgrade(database.server.url(), schema=database.schema)
    return database


@pytest.fixture(scope="module")
def kafka_cluster3() -> Iterator[KafkaCluster]:
    """A dedicated 3-node KRaft cluster (RF 3, min.insync.replicas 2) for fault tests."""
    with stacks.kafka_cluster(3) as cluster:
        yield cluster


@pytest.fixture
def dedicated_kafka() -> Iterator[KafkaCluster]:
    """A single broker of this test's own, free to be stopped, killed or paused."""
    with stacks.kafka_cluster(1) as cluster:
        yield cluster


@pytest.fixture
def dedicated_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, free to be stopped or killed."""
    with stacks.postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDbServer]:
    """The session's MariaDB server."""
    with stacks.session_mariadb() as server:
        yield server


@dataclass(frozen=True)
class TestMariaDatabase:
    """A database of the session's MariaDB server reserved for one test (kafkaguard's "schema" on
    MariaDB is a database: ``schema`` is its name, ``url`` connects to it)."""

    __test__ = False

    server: MariaDbServer
    schema: str
    dialect: str = "mariadb"

    @property
    def url(self) -> str:
        """SQLAlchemy URL (``mysql+pymysql://``) of this database."""
        return self.server.url(database=self.schema)

    @property
    def async_url(self) -> str:
        """SQLAlchemy URL (``mysql+aiomysql://``) of this database."""
        return self.server.url(driver="aiomysql", database=self.schema)

    def connect(self) -> pymysql.connections.Connection[Any]:
        """A raw autocommit PyMySQL connection to this database."""
        import pymysql  # the mariadb extra: only suites on MariaDB need it

        return pymysql.connect(**self.server.connect_kwargs(database=self.schema), autocommit=True)


@pytest.fixture
def mariadb_database(mariadb: MariaDbServer) -> Iterator[TestMariaDatabase]:
    """A fresh database on the session's MariaDB server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    _server_statement(mariadb, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    yield TestMariaDatabase(mariadb, name)
    _server_statement(mariadb, f"DROP DATABASE IF EXISTS `{name}`")


def _server_statement(server: MariaDbServer, sql: str) -> None:
    """Run one statement on ``server`` outside any database (creating or dropping one)."""
    import pymysql  # the mariadb extra: only suites on MariaDB need it

    conn = pymysql.connect(**server.connect_kwargs(database=None), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def migrated_mariadb_database(mariadb_database: TestMariaDatabase) -> TestMariaDatabase:
    """A fresh MariaDB database with kafkaguard's migrations applied."""
    migrate.upgrade(mariadb_database.url, schema=mariadb_database.schema)
    return mariadb_database


@pytest.fixture(params=["postgresql", "mariadb"])
def store_database(request: pytest.FixtureRequest) -> TestDatabase | TestMariaDatabase:
    """A migrated database of each kind in turn (the test runs once per database)."""
    name = "migrated_database" if request.param == "postgresql" else "migrated_mariadb_database"
    found: TestDatabase | TestMariaDatabase = request.getfixturevalue(name)
    return found


@pytest.fixture(scope="session")
def ferretdb() -> Iterator[FerretDbServer]:
    """The session's FerretDB server (built with ``go install`` on first use)."""
    with stacks.ferretdb_server() as server:
        yield server


@pytest.fixture
def mongo_database(ferretdb: FerretDbServer) -> Iterator[Any]:
    """A fresh database on the session's FerretDB (a pymongo ``Database`` made as
    :func:`kafkaguard.stores.mongo_documents.connect` makes one), dropped after the test."""
    from kafkaguard.stores.mongo_documents import connect

    db = connect(ferretdb.url(f"t_{uuid.uuid4().hex[:12]}"))
    try:
        yield db
    finally:
        db.client.drop_database(db.name)
        db.client.close()
