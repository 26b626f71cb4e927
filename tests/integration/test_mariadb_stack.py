"""The dev MariaDB server and kafkaguard's migrations on it (issue 18, the foundation of item 1).

One dedicated server (``stacks.mariadb_server()``: its own folder, a free port) serves the module;
each migration test works in a database of its own (``--schema`` names a database on MariaDB).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from sqlalchemy import text

from kafkaguard.console.fingerprint import throwing_frame
from kafkaguard.db import migrate
from kafkaguard.db.columns import STACK_FRAME_SQL
from kafkaguard.db.tables import metadata
from kafkaguard.devstack import process
from kafkaguard.devstack.mariadb import MariaDbServer
from kafkaguard.devstack.postgres import PostgresServer
from kafkaguard.testing.stacks import mariadb_server, scratch_root
from tests.integration.dev_stack_helpers import listening, run_dev

HEAD = "0005_outbox_traceparent"
KAFKAGUARD = [sys.executable, "-m", "kafkaguard"]


@pytest.fixture(scope="module")
def server() -> Iterator[MariaDbServer]:
    with mariadb_server() as started:
        yield started


@pytest.fixture
def mydb(server: MariaDbServer) -> Iterator[str]:
    name = f"kg_{uuid.uuid4().hex[:10]}"
    yield name
    conn = pymysql.connect(**server.connect_kwargs(database=None), autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def query(
    server: MariaDbServer, sql: str, args: tuple[object, ...] = (), database: str | None = None
) -> list[tuple[Any, ...]]:
    conn = pymysql.connect(**server.connect_kwargs(database=database), autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())
    finally:
        conn.close()


def tables(server: MariaDbServer, database: str) -> set[str]:
    rows = query(server, "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (database,))
    return {str(r[0]) for r in rows}


def ddl(server: MariaDbServer, database: str) -> dict[str, str]:
    return {
        t: str(query(server, f"SHOW CREATE TABLE `{t}`", database=database)[0][1]) for t in tables(server, database)
    }


def test_server_listens_on_loopback_only_with_a_row_binlog(server: MariaDbServer) -> None:
    assert listening(server.port) == ["0100007F"]  # 127.0.0.1, nothing on :: or 0.0.0.0
    [(fmt, image, log_bin, bind, server_id, version, collation, zone)] = query(
        server,
        "SELECT @@binlog_format, @@binlog_row_image, @@log_bin, @@bind_address, @@server_id, @@version,"
        " @@collation_server, @@time_zone",
    )
    assert (fmt, image, log_bin) == ("ROW", "FULL", 1)
    assert bind == "127.0.0.1" and server_id >= 1
    assert str(version).startswith("10.11.")
    assert (collation, zone) == ("utf8mb4_bin", "+00:00")
    assert len(query(server, "SHOW BINARY LOGS")) >= 1


def test_server_runs_unprivileged_and_root_needs_the_password(server: MariaDbServer) -> None:
    assert server.pid is not None and server.is_running()
    uid = next(
        line.split()[1]
        for line in Path(f"/proc/{server.pid}/status").read_text().splitlines()
        if line.startswith("Uid:")
    )
    if os.geteuid() == 0:
        assert uid != "0"
    for where in ({"host": "127.0.0.1", "port": server.port}, {"unix_socket": str(server.socket)}):
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(user="root", password="", connect_timeout=2, **where)
    assert server.password() not in server.log_file.read_text()


def test_upgrade_creates_every_table_and_a_second_upgrade_changes_nothing(server: MariaDbServer, mydb: str) -> None:
    migrate.upgrade(server.url(), schema=mydb)
    assert tables(server, mydb) == {*metadata.tables, "alembic_version"}
    assert query(server, "SELECT version_num FROM alembic_version", database=mydb) == [(HEAD,)]
    before = ddl(server, mydb)
    migrate.upgrade(server.url(), schema=mydb)
    assert ddl(server, mydb) == before
    assert query(server, "SELECT version_num FROM alembic_version", database=mydb) == [(HEAD,)]


def test_downgrade_to_base_and_up_again(server: MariaDbServer, mydb: str) -> None:
    migrate.upgrade(server.url(), schema=mydb)
    first = ddl(server, mydb)
    migrate.downgrade(server.url(), schema=mydb, revision="base")
    assert tables(server, mydb) == {"alembic_version"}
    assert query(server, "SELECT count(*) FROM alembic_version", database=mydb) == [(0,)]
    migrate.upgrade(server.url(), schema=mydb)
    assert ddl(server, mydb) == first


def test_outbox_five_column_insert_gets_every_default(server: MariaDbServer, mydb: str) -> None:
    migrate.upgrade(server.url(), schema=mydb)
    insert = "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (%s, %s, %s, %s, %s)"
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    conn = pymysql.connect(**server.connect_kwargs(database=mydb))
    try:
        with conn.cursor() as cur:
            cur.execute(insert, (ids[0], "order", "order-1", "order.created", json.dumps({"total": 3})))
            cur.execute(insert, (ids[1], "order", "Order-1", "order.paid", json.dumps({"paid": True})))
        conn.commit()
    finally:
        conn.close()
    rows = query(
        server,
        "SELECT id, aggregateid, payload, seq, shard, headers, schema_version, published_at, created_at"
        " FROM outbox ORDER BY seq",
        database=mydb,
    )
    assert [r[0] for r in rows] == ids
    assert json.loads(rows[0][2]) == {"total": 3}
    assert rows[0][3] < rows[1][3]  # seq: AUTO_INCREMENT, in insert order
    for row in rows:
        assert row[4] == zlib.crc32(row[1].encode()) & 63  # the shard rule on MariaDB
        assert json.loads(row[5]) == {} and row[6] == 1 and row[7] is None and row[8] is not None
    # keys compare byte for byte (utf8mb4_bin): "Order-1" is not "order-1"
    assert query(server, "SELECT count(*) FROM outbox WHERE aggregateid = %s", ("order-1",), mydb) == [(1,)]


def test_outbox_id_defaults_and_json_is_checked(server: MariaDbServer, mydb: str) -> None:
    migrate.upgrade(server.url(), schema=mydb)
    query(
        server,
        "INSERT INTO outbox (aggregatetype, aggregateid, type, payload) VALUES (%s, %s, %s, %s)",
        ("order", "k", "t", "{}"),
        mydb,
    )
    [(generated,)] = query(server, "SELECT id FROM outbox", database=mydb)
    assert str(uuid.UUID(generated)) == generated
    with pytest.raises(pymysql.err.OperationalError):  # CONSTRAINT `payload` failed: not JSON
        query(
            server,
            "INSERT INTO outbox (aggregatetype, aggregateid, type, payload) VALUES (%s, %s, %s, %s)",
            ("order", "k", "t", "not json"),
            mydb,
        )


STACKS = [
    None,
    "",
    "no frame here",
    'Traceback (most recent call last):\n  File "app.py", line 3, in handle\n    boom()\nValueError: x\n',
    'Traceback:\n  File "a.py", line 1, in outer\n    inner()\n  File "b.py", line 22, in inner   \n    raise\n',
    'File "x.py", line 9, in f File "y.py", line 10, in g\nFILE "z.py", line 1, in h\n',
]


def test_stack_frame_is_postgresqls(server: MariaDbServer, mydb: str, postgres: PostgresServer) -> None:
    """The stored frame on MariaDB is the one PostgreSQL's stored expression gives (and, but for a
    line holding two frames, where PostgreSQL's greedy match takes the later one, the console's)."""
    migrate.upgrade(server.url(), schema=mydb)
    for i, stack in enumerate(STACKS):
        query(
            server,
            "INSERT INTO kafka_listener_dead_letters (consumer_group, topic, `partition`, `offset`, reason, stack)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            ("g", "t", 0, i, "handler_error", stack),
            mydb,
        )
    rows = query(server, "SELECT stack, stack_frame FROM kafka_listener_dead_letters ORDER BY `offset`", database=mydb)
    with psycopg.connect(postgres.conninfo()) as conn:
        expected = [
            conn.execute(f"SELECT {STACK_FRAME_SQL} FROM (SELECT %s::text AS stack) AS s", (stack,)).fetchone()
            for stack in STACKS
        ]
    assert [frame for _, frame in rows] == [row[0] for row in expected if row is not None]
    assert [frame for _, frame in rows][:5] == [throwing_frame(stack) for stack in STACKS[:5]]


async def test_async_driver_reads_the_outbox(server: MariaDbServer, mydb: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    migrate.upgrade(server.url(), schema=mydb)
    engine = create_async_engine(server.url(driver="aiomysql", database=mydb))
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO outbox (aggregatetype, aggregateid, type, payload) VALUES ('a', :k, 't', '{}')"),
                {"k": "async-key"},
            )
        async with engine.connect() as conn:
            found = (await conn.execute(text("SELECT aggregateid FROM outbox"))).scalars().all()
    finally:
        await engine.dispose()
    assert found == ["async-key"]


def test_cli_db_upgrade_on_a_mariadb_url(server: MariaDbServer, mydb: str) -> None:
    env = {**os.environ, "KAFKAGUARD_DATABASE_URL": server.url()}
    out = subprocess.run(
        [*KAFKAGUARD, "db", "upgrade", "--schema", mydb], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert server.password() not in out.stdout + out.stderr
    assert query(server, "SELECT version_num FROM alembic_version", database=mydb) == [(HEAD,)]


def test_dev_up_database_mariadb_status_env_fault_both_down() -> None:
    run_dir = scratch_root() / f"cli-mariadb-{os.getpid()}"
    run_dir.mkdir(exist_ok=True)
    kafka_port = process.free_ports(1)[0]
    while not process.port_is_free(kafka_port + 1):
        kafka_port = process.free_ports(1)[0]
    my_port = process.free_ports(1)[0]
    try:
        up = ["dev", "up", "--database", "mariadb", "--kafka-port", str(kafka_port), "--mariadb-port", str(my_port)]
        run_dev(up, run_dir)
        info = json.loads(run_dev(["dev", "status", "--json"], run_dir).stdout)
        assert info["databases"] == ["mariadb"]
        assert info["mariadb"]["address"] == f"127.0.0.1:{my_port}" and info["mariadb"]["running"] is True
        assert info["database_url"] == info["mariadb_url"]
        assert info["database_url"].startswith("mysql+pymysql://kafkaguard:")
        assert info["postgres"]["running"] is False and not (run_dir / "postgres").exists()
        pid = info["mariadb"]["pid"]
        run_dev(up, run_dir)  # idempotent: the same server
        assert json.loads(run_dev(["dev", "status", "--json"], run_dir).stdout)["mariadb"]["pid"] == pid
        env = run_dev(["dev", "env", "--database", "mariadb"], run_dir).stdout
        assert f"export KAFKAGUARD_DATABASE_URL={info['mariadb_url']}" in env.replace("'", "")
        assert listening(my_port) == ["0100007F"]
        run_dev(["dev", "mariadb", "kill"], run_dir)
        assert json.loads(run_dev(["dev", "status", "--json"], run_dir).stdout)["mariadb"]["running"] is False
        pg_port = process.free_ports(1)[0]
        run_dev(["dev", "up", "--database", "postgres", "--postgres-port", str(pg_port)], run_dir)  # adds PostgreSQL
        both = json.loads(run_dev(["dev", "status", "--json"], run_dir).stdout)
        assert both["databases"] == ["postgres", "mariadb"]
        assert both["postgres"]["running"] is True and both["mariadb"]["running"] is True  # killed one restarted
        assert both["mariadb_url"] == info["mariadb_url"]  # same data folder, same password
        assert both["database_url"].startswith("postgresql+psycopg://") and f":{pg_port}/" in both["database_url"]
        pid = both["mariadb"]["pid"]
        run_dev(["dev", "down"], run_dir)
        assert not process.pid_matches(pid, "mariadbd")
        assert json.loads(run_dev(["dev", "status", "--json"], run_dir).stdout)["mariadb"]["running"] is False
    finally:
        run_dev(["dev", "down", "--wipe"], run_dir, check=False)
        shutil.rmtree(run_dir, ignore_errors=True)
