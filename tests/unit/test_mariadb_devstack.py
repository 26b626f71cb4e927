"""The pure parts of MariaDB support: the server's option file, the --database choice, URL handling,
`dev env` lines, and the SQL each dialect's migrations emit (rendered offline, no server)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from alembic import command

from kafkaguard.cli.dev import env_lines
from kafkaguard.db.engine import driver_of, is_mariadb, mariadb_sync_url
from kafkaguard.db.migrate import alembic_config
from kafkaguard.devstack.mariadb import options_file
from kafkaguard.devstack.stack import databases_for
from kafkaguard.errors import ConfigurationError


def test_options_file_binds_loopback_and_writes_a_full_row_binlog(tmp_path: Path) -> None:
    lines = options_file(tmp_path, 23306).splitlines()
    assert lines[0] == "[mariadbd]"
    for expected in (
        "port = 23306",
        "bind-address = 127.0.0.1",
        "skip-networking = 0",
        "binlog_format = ROW",
        "binlog_row_image = FULL",
        "server_id = 1",
        "sync_binlog = 1",
        "innodb_flush_log_at_trx_commit = 1",
        "collation_server = utf8mb4_bin",
        f"log-bin = {tmp_path / 'binlog' / 'mariadb-bin'}",
        f"socket = {tmp_path / 'mariadb.sock'}",
        f"datadir = {tmp_path / 'data'}",
    ):
        assert expected in lines
    assert not any("password" in line for line in lines)


def test_database_choice() -> None:
    assert databases_for("postgres") == ("postgres",)
    assert databases_for("mariadb") == ("mariadb",)
    assert databases_for("both") == ("postgres", "mariadb")
    with pytest.raises(ConfigurationError):
        databases_for("mysql")


def test_mariadb_urls() -> None:
    assert is_mariadb("mysql+aiomysql://u:p@127.0.0.1:23306/kafkaguard")
    assert is_mariadb("mariadb+pymysql://u:p@127.0.0.1/kafkaguard")
    assert not is_mariadb("postgresql+psycopg://u:p@127.0.0.1/kafkaguard")
    sync = mariadb_sync_url("mysql+aiomysql://u:p@127.0.0.1:23306/kafkaguard")
    assert (sync.drivername, sync.port, sync.database, sync.query["charset"]) == (
        "mysql+pymysql", 23306, "kafkaguard", "utf8mb4"
    )  # fmt: skip
    assert mariadb_sync_url("mysql://u:p@h/d?charset=latin1").query["charset"] == "latin1"
    with pytest.raises(ConfigurationError):  # the stores are PostgreSQL's still: their URL check is unchanged
        driver_of("mysql+pymysql://u:p@127.0.0.1/kafkaguard")


def test_env_lines_for_mariadb() -> None:
    url = "mysql+pymysql://kafkaguard:secret@127.0.0.1:23306/kafkaguard?charset=utf8mb4"
    info = {
        "bootstrap_servers": "127.0.0.1:29092",
        "database_url": "postgresql+psycopg://kafkaguard:pg@127.0.0.1:25432/kafkaguard",
        "databases": ["postgres", "mariadb"],
        "mariadb_url": url,
        "mariadb": {"address": "127.0.0.1:23306"},
    }
    lines = env_lines(info, database="mariadb")
    assert f"export KAFKAGUARD_DATABASE_URL='{url}'" in lines
    assert lines[-1] == "# mariadb --host=127.0.0.1 --port=23306 --user=kafkaguard -p kafkaguard"
    assert "postgresql+psycopg" in env_lines(info)[1]  # the stack's first database by default


def _offline_sql(url: str) -> str:
    cfg = alembic_config(url)
    buffer = io.StringIO()
    cfg.output_buffer = buffer
    command.upgrade(cfg, "head", sql=True)
    return buffer.getvalue()


def test_each_dialect_gets_its_own_ddl() -> None:
    pg = _offline_sql("postgresql+psycopg://u:p@127.0.0.1/kafkaguard")
    my = _offline_sql("mysql+pymysql://u:p@127.0.0.1/kafkaguard")
    assert "hashtext(aggregateid) & 63" in pg and "LANGUAGE plpgsql" in pg and "JSONB" in pg
    assert "crc32(`aggregateid`) & 63" in my and "AUTO_INCREMENT" in my and "regexp_substr" in my
    for postgres_only in ("plpgsql", "JSONB", "hashtext", "gen_random_uuid", "::jsonb", "pg_notify"):
        assert postgres_only not in my
    for table in ("outbox", "kafka_inbox", "kafka_publisher_dead_letters", "kafka_listener_dead_letters",
                  "kafkaguard_last_resort", "kafkaguard_console_audit"):  # fmt: skip
        assert f"CREATE TABLE {table}" in my and f"CREATE TABLE {table}" in pg
