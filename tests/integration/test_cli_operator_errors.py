"""Every CLI error is one line on stderr: exit 2 for usage, 1 for failures, no traceback unless --debug.

Against the real PostgreSQL: a closed port, a wrong password, a schema without kafkaguard's tables.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kafkaguard.testing.fixtures import TestDatabase
from tests.integration.cli_operator_helpers import APP, assert_one_error_line, closed_port, db_args, run_cli

USAGE_ERRORS = [
    ["dead-letters", "list", "--since", "not-a-date"],
    ["dead-letters", "list", "--store", "nosuch"],
    ["dead-letters", "show", "abc"],
    ["dead-letters", "replay", "--id", "x", "--app", APP],
    ["dead-letters", "list", "--no-such-option"],
    ["dead-letters", "list", "--limit", "-1"],
    ["dead-letters", "replay", "--limit", "-1", "--app", APP],
    ["dead-letters", "list", "--since", "2030-01-01", "--until", "2020-01-01"],
    ["dead-letters", "list", "--store", "publisher", "--group", "g"],
    ["dead-letters", "replay", "--store", "last-resort"],
    ["dead-letters", "replay", "--store", "publisher", "--app", APP],
    ["dead-letters", "replay", "--status", "restored", "--app", APP],
    ["restore", "listener", "--app", APP],
    ["restore", "publisher", "--every", "soon"],
    ["cleanup", "--once", "--inbox-retention", "forever"],
    ["no-such-command"],
]


@pytest.mark.parametrize("args", USAGE_ERRORS, ids=lambda a: " ".join(a))
def test_usage_errors_exit_2_with_one_line(migrated_database: TestDatabase, args: list[str]) -> None:
    result = run_cli(*args, *(db_args(migrated_database) if args[0] != "no-such-command" else []))
    assert_one_error_line(result, 2)


def test_database_down_is_one_line_naming_host_without_the_password(migrated_database: TestDatabase) -> None:
    password = migrated_database.server.password_file.read_text().strip()
    port = closed_port()
    url = f"postgresql+psycopg://kafkaguard:{password}@127.0.0.1:{port}/kafkaguard"
    for args in (["dead-letters", "list"], ["dead-letters", "stats", "--store", "last-resort"],
                 ["dead-letters", "show", "1"], ["dead-letters", "replay", "--app", APP]):  # fmt: skip
        result = run_cli(*args, "--url", url)
        line = assert_one_error_line(result, 1)
        assert f"cannot reach the database at 127.0.0.1:{port}/kafkaguard" in line, line
        assert password not in result.stdout + result.stderr


def test_wrong_password_says_the_login_was_refused(migrated_database: TestDatabase) -> None:
    port = migrated_database.server.port
    url = f"postgresql+psycopg://kafkaguard:not-the-password-42@127.0.0.1:{port}/kafkaguard"
    result = run_cli("dead-letters", "list", "--url", url)
    line = assert_one_error_line(result, 1)
    assert f"127.0.0.1:{port}/kafkaguard refused the login" in line, line
    assert "password authentication failed" in line
    assert "cannot reach" not in line
    assert "not-the-password-42" not in result.stdout + result.stderr


def test_password_from_the_environment_is_not_printed_either(migrated_database: TestDatabase) -> None:
    port = closed_port()
    secret = "s3cret-from-env"
    url = f"postgresql+psycopg://kafkaguard:{secret}@127.0.0.1:{port}/kafkaguard"
    result = run_cli("--debug", "dead-letters", "list", env={"KAFKAGUARD_DATABASE_URL": url})
    assert result.returncode == 1
    assert secret not in result.stdout + result.stderr


def test_missing_tables_name_the_command_to_run(database: TestDatabase) -> None:
    result = run_cli("dead-letters", "list", *db_args(database))
    line = assert_one_error_line(result, 1)
    assert "kafkaguard db upgrade" in line, line
    assert "kafka_listener_dead_letters" in line


def test_consume_of_a_module_that_does_not_exist(migrated_database: TestDatabase) -> None:
    result = run_cli(
        "consume", "nosuch.module:registry", "--group", "g", "--topic", "t", "--url", migrated_database.server.url()
    )
    line = assert_one_error_line(result, 1)
    assert "nosuch.module" in line


def test_show_of_a_missing_record_is_a_failure(migrated_database: TestDatabase) -> None:
    line = assert_one_error_line(run_cli("dead-letters", "show", "999999", *db_args(migrated_database)), 1)
    assert "no listener record with id 999999" in line


def test_debug_prints_the_traceback(migrated_database: TestDatabase) -> None:
    url = f"postgresql+psycopg://kafkaguard:x@127.0.0.1:{closed_port()}/kafkaguard"
    result = run_cli("--debug", "dead-letters", "list", "--url", url)
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach the database at 127.0.0.1:")


def test_the_kafkaguard_script_finds_the_users_module_in_the_working_folder(
    migrated_database: TestDatabase, tmp_path: Path
) -> None:
    """As the README runs it: the installed `kafkaguard` script (not `python -m`), no PYTHONPATH, in
    the folder that holds the handlers' package."""
    (tmp_path / "myhandlers").mkdir()
    (tmp_path / "myhandlers" / "__init__.py").write_text("")
    (tmp_path / "myhandlers" / "welcome.py").write_text(
        "from kafkaguard import HandlerRegistry\nregistry = HandlerRegistry()\n"
    )
    script = Path(sys.executable).parent / "kafkaguard"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("KAFKAGUARD_")}
    args = ["restore", "listener", "--app", "myhandlers.welcome:registry", "--once", *db_args(migrated_database)]
    done = subprocess.run([str(script), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no open listener dead letters" in done.stdout + done.stderr
    other = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    other.mkdir()
    elsewhere = subprocess.run([str(script), *args], cwd=other, env=env, capture_output=True, text=True, timeout=120)
    assert elsewhere.returncode != 0 and "cannot import 'myhandlers.welcome'" in elsewhere.stderr  # the folder counts
