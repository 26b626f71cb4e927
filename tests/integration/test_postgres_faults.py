"""PostgreSQL fault controls: kill -9 and stop lose no committed row; restart keeps the data."""

import psycopg
import pytest

from kafkaguard.devstack.postgres import PostgresServer


def test_kill_and_restart_keep_committed_rows(dedicated_postgres: PostgresServer) -> None:
    with psycopg.connect(dedicated_postgres.conninfo(), autocommit=True) as conn:
        conn.execute("CREATE TABLE t (n int)")
        conn.execute("INSERT INTO t SELECT generate_series(1, 1000)")
    pid = dedicated_postgres.pid

    dedicated_postgres.kill()
    assert not dedicated_postgres.is_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(dedicated_postgres.conninfo(), connect_timeout=2)

    dedicated_postgres.start()  # crash recovery replays the WAL
    assert dedicated_postgres.pid != pid
    with psycopg.connect(dedicated_postgres.conninfo()) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)

    dedicated_postgres.stop()
    assert not dedicated_postgres.is_running()
    dedicated_postgres.restart()
    with psycopg.connect(dedicated_postgres.conninfo()) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)


def test_server_runs_as_an_unprivileged_user(dedicated_postgres: PostgresServer) -> None:
    import os

    assert dedicated_postgres.pid is not None
    uid = os.stat(f"/proc/{dedicated_postgres.pid}").st_uid
    assert uid != 0
