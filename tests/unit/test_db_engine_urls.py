"""One helper derives each driver's URL and search_path setting from any PostgreSQL URL form (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import URL

from kafkaguard.db.engine import (
    async_engine,
    connect_args,
    create_async_engine,
    create_engine,
    dialect_name,
    driver_url,
    libpq_conninfo,
    mariadb_connect_kwargs,
    mariadb_sync_url,
    schema_of,
    search_path,
)
from kafkaguard.db.readiness import problem
from kafkaguard.errors import ConfigurationError, SchemaNotReadyError
from kafkaguard.settings import KafkaguardSettings

FORMS = {
    "plain": "postgresql://u:pw@db.example:5433/app",
    "psycopg": "postgresql+psycopg://u:pw@db.example:5433/app",
    "psycopg_async": "postgresql+psycopg_async://u:pw@db.example:5433/app",
    "asyncpg": "postgresql+asyncpg://u:pw@db.example:5433/app",
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_gives_a_psycopg_sync_url(form: str) -> None:
    u = driver_url(FORMS[form])
    assert u.drivername == "postgresql+psycopg"
    assert (u.host, u.port, u.database, u.username, u.password) == ("db.example", 5433, "app", "u", "pw")


@pytest.mark.parametrize(
    ("form", "driver"),
    [("plain", "psycopg"), ("psycopg", "psycopg"), ("psycopg_async", "psycopg_async"), ("asyncpg", "asyncpg")],
)
def test_async_url_keeps_the_named_async_driver(form: str, driver: str) -> None:
    assert driver_url(FORMS[form], asynchronous=True).drivername == f"postgresql+{driver}"


def test_schema_is_options_for_libpq_and_server_settings_for_asyncpg() -> None:
    assert connect_args(FORMS["psycopg"], "signup") == {"options": "-csearch_path=signup,public"}
    assert connect_args(FORMS["psycopg"], "signup", asynchronous=True) == {"options": "-csearch_path=signup,public"}
    assert connect_args(FORMS["asyncpg"], "signup", asynchronous=True) == {
        "server_settings": {"search_path": "signup,public"}
    }
    # the asyncpg URL's sync engine is psycopg: libpq options again
    assert connect_args(FORMS["asyncpg"], "signup") == {"options": "-csearch_path=signup,public"}
    assert connect_args(FORMS["plain"]) == {}


def test_url_options_and_timeouts_are_translated_not_passed_to_asyncpg() -> None:
    url = FORMS["asyncpg"] + "?options=-cstatement_timeout%3D5000&connect_timeout=3&sslmode=disable"
    u = driver_url(url, asynchronous=True)
    assert dict(u.query) == {"ssl": "disable"}  # asyncpg has no 'options' nor 'connect_timeout'
    assert connect_args(url, "s", asynchronous=True) == {
        "server_settings": {"statement_timeout": "5000", "search_path": "s,public"},
        "timeout": 3.0,
    }
    sync = driver_url(url)
    assert dict(sync.query) == {"connect_timeout": "3", "sslmode": "disable"}
    assert connect_args(url, "s") == {"options": "-cstatement_timeout=5000 -csearch_path=s,public"}


def test_asyncpg_spellings_become_libpq_ones_for_sync() -> None:
    url = FORMS["asyncpg"] + "?ssl=require&timeout=4&prepared_statement_cache_size=0"
    assert dict(driver_url(url).query) == {"sslmode": "require", "connect_timeout": "4"}


def test_schema_names_that_need_quotes() -> None:
    assert search_path("signup") == "signup,public"
    assert search_path("Sign Up") == '"Sign Up",public'
    assert search_path("public") == "public"
    info = libpq_conninfo(FORMS["asyncpg"] + "?connect_timeout=2&prepared_statement_cache_size=0", schema="Sign Up")
    assert "options='-csearch_path=\"Sign\\\\ Up\",public'" in info
    assert "connect_timeout='2'" in info and "prepared" not in info and "asyncpg" not in info


def test_other_databases_are_refused_in_one_line() -> None:
    with pytest.raises(ConfigurationError, match="needs PostgreSQL or MariaDB"):
        driver_url("sqlite:///x.db")


def test_mariadb_urls_name_the_database_a_schema_picks() -> None:
    """On MariaDB a schema is a database; a PostgreSQL-only path says so instead of "needs PostgreSQL"."""
    assert dialect_name("mysql://u@h/d") == "mariadb" and dialect_name("postgresql://u@h/d") == "postgresql"
    assert (
        str(mariadb_sync_url("mysql+aiomysql://u:p@h/app", schema="kg")) == "mysql+pymysql://u:***@h/kg?charset=utf8mb4"
    )
    kwargs = mariadb_connect_kwargs("mariadb://u:p@h:3307/app?connect_timeout=3&ssl_ca=/ca.pem")
    assert kwargs == {
        "host": "h", "port": 3307, "user": "u", "password": "p", "charset": "utf8mb4", "database": "app",
        "connect_timeout": 3, "ssl_ca": "/ca.pem", "init_command": "SET time_zone = '+00:00'",
    }  # fmt: skip
    with pytest.raises(ConfigurationError, match="PostgreSQL only"):
        driver_url("mysql://u@h/d")


def test_unparseable_url_never_quotes_the_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        driver_url("postgresql://u:s3cret@h:notaport/d?x")
    assert "s3cret" not in str(info.value)


def test_public_builders_take_settings_and_remember_the_schema() -> None:
    settings = KafkaguardSettings(database_url=FORMS["asyncpg"], db_schema="signup")
    engine = create_engine(settings)
    aengine = create_async_engine(settings)
    try:
        assert engine.url.drivername == "postgresql+psycopg"
        assert aengine.url.drivername == "postgresql+asyncpg"
        assert schema_of(engine) == (True, "signup") and schema_of(aengine) == (True, "signup")
        assert schema_of(create_engine(url=FORMS["plain"])) == (True, None)
    finally:
        engine.dispose()
    with pytest.raises(ConfigurationError, match="no database URL"):
        create_engine(KafkaguardSettings())
    assert schema_of(async_engine(FORMS["plain"])) == (True, None)


def test_missing_tables_message_names_schema_and_command() -> None:
    err = problem("signup", "signup", ["outbox"])
    assert isinstance(err, SchemaNotReadyError)
    assert str(err) == (
        "kafkaguard's tables are missing in schema signup (outbox): run `kafkaguard db upgrade --schema signup`"
    )
    assert problem("signup", "signup", []) is None
    nowhere = problem(None, None, [])
    assert nowhere is not None and "no schema of the connection's search_path exists" in str(nowhere)
    assert "--schema" in str(problem(None, "public", ["kafka_inbox"]))


@given(
    name=st.sampled_from(["connect_timeout", "read_timeout", "write_timeout", "ssl_ca", "charset", "other"]),
    value=st.text(st.characters(codec="utf-8"), max_size=20),
)
def test_mariadb_connect_kwargs_take_any_query_value_or_refuse_it_in_one_line(name: str, value: str) -> None:
    """Whatever a user writes in a MariaDB URL's query: PyMySQL arguments, or a ConfigurationError
    that never quotes the password."""
    url = URL.create("mysql+pymysql", username="u", password="s3cret", host="h", database="d", query={name: value})
    if name.endswith("timeout") and not _whole_number(value):
        with pytest.raises(ConfigurationError, match=f"{name} is not a whole number") as info:
            mariadb_connect_kwargs(url, schema="kg")
        assert "s3cret" not in str(info.value)
        return
    kwargs = mariadb_connect_kwargs(url, schema="kg")
    assert kwargs["database"] == "kg" and kwargs["password"] == "s3cret"
    if name.endswith("timeout"):
        assert kwargs[name] == int(value)
    elif name != "other":
        assert kwargs[name] == value


def _whole_number(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
