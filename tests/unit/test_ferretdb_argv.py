"""FerretDB's command line and the MongoDB URL helpers (pure parts of the document-store tooling)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafkaguard.devstack.ferretdb import FerretDbServer, server_argv
from kafkaguard.errors import ConfigurationError
from kafkaguard.stores.mongo_documents import KeyLeases, connect, is_mongo_url


def test_the_server_listens_on_loopback_with_its_files_under_its_home_and_no_telemetry() -> None:
    argv = server_argv(Path("/bin/ferretdb"), Path("/run/fdb"), 27117, 27118)
    assert argv[0] == "/bin/ferretdb"
    assert "--listen-addr=127.0.0.1:27117" in argv and "--debug-addr=127.0.0.1:27118" in argv
    assert "--handler=sqlite" in argv and "--sqlite-url=file:/run/fdb/data/" in argv
    assert "--state-dir=/run/fdb/state" in argv and "--telemetry=disable" in argv
    assert not any("0.0.0.0" in a for a in argv)


def test_the_url_names_the_database_and_carries_no_credentials() -> None:
    server = FerretDbServer(run_dir=Path("/r"), home=Path("/h"), port=27117, debug_port=27118)
    assert server.url("activity") == "mongodb://127.0.0.1:27117/activity"


def test_mongo_urls_are_told_from_sql_urls() -> None:
    assert is_mongo_url("mongodb://127.0.0.1:27017/a") and is_mongo_url("mongodb+srv://h/a")
    assert not is_mongo_url("postgresql+psycopg://u@h/db") and not is_mongo_url("") and not is_mongo_url(None)


def test_a_url_without_its_database_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigurationError, match="needs its database"):
        connect("mongodb://127.0.0.1:27017/")
    with pytest.raises(ConfigurationError, match="not a usable MongoDB URL"):
        connect("mongodb://")


def test_lease_names_never_collide_across_scopes() -> None:
    assert KeyLeases.name("a:b", "c") != KeyLeases.name("a", "b:c")
