"""Engines and connection strings on any PostgreSQL URL form, with kafkaguard's schema first.

One place turns the URL a user gives (``postgresql://``, ``postgresql+psycopg://``,
``postgresql+psycopg_async://``, ``postgresql+asyncpg://``) into what each consumer of it needs:

- :func:`driver_url`: the URL for a sync engine (psycopg 3, whatever async driver was named) or an
  async one (the named async driver; psycopg 3 otherwise), with the query parameters each driver
  understands (``options`` / ``connect_timeout`` / ``sslmode`` for libpq, ``server_settings`` /
  ``timeout`` / ``ssl`` for asyncpg);
- :func:`connect_args`: how each driver is told the search_path (libpq ``options=-csearch_path=...``,
  asyncpg ``server_settings``);
- :func:`sync_engine` / :func:`async_engine`: SQLAlchemy engines built from both;
- :func:`libpq_conninfo`: a libpq string for raw psycopg connections (the relay, LISTEN/NOTIFY);
- :func:`create_engine` / :func:`create_async_engine`: the public builders from settings.

With a schema the search_path is ``<schema>, public``: kafkaguard's tables are found in the schema
(first), an application's own tables in ``public`` still resolve. :func:`schema_of` answers which
schema an engine built here puts first.
"""

from __future__ import annotations

import importlib.util
import re
import time
import weakref
from typing import TYPE_CHECKING, Any

import sqlalchemy
from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

from kafkaguard.errors import ConfigurationError

if TYPE_CHECKING:
    from kafkaguard.settings import KafkaguardSettings

SYNC_DRIVER = "psycopg"
ASYNC_DRIVERS = frozenset({"asyncpg", "psycopg_async"})
LIBPQ_DRIVERS = frozenset({"psycopg", "psycopg_async", "psycopg2"})
URL_FORMS = (
    "postgresql://, postgresql+psycopg://, postgresql+psycopg_async://, postgresql+asyncpg://"
    " or (MariaDB) mysql+pymysql:// / mariadb+pymysql://"
)

# Query parameters that mean the same thing under two names: (libpq, asyncpg).
_RENAMED = (("connect_timeout", "timeout"), ("sslmode", "ssl"))
# SQLAlchemy's asyncpg dialect reads these from the URL; libpq would refuse them.
_ASYNCPG_ONLY = frozenset({"prepared_statement_cache_size", "prepared_statement_name_func", "server_settings"})
# Connection parameters a libpq string carries over from the URL (the others are SQLAlchemy's or asyncpg's).
_LIBPQ_KEYS = frozenset(
    {
        "connect_timeout", "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "application_name",
        "target_session_attrs", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
        "tcp_user_timeout", "gssencmode", "channel_binding", "passfile", "service", "hostaddr",
    }
)  # fmt: skip

# Engines built here -> (the URL as given, the schema): an async twin keeps the driver and schema.
_ORIGINS: weakref.WeakKeyDictionary[Engine, tuple[URL, str | None]] = weakref.WeakKeyDictionary()


def _parse(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    if not url:
        raise ConfigurationError("no database URL: pass --url or set KAFKAGUARD_DATABASE_URL")
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's messages quote the URL (and its password)
        raise ConfigurationError(f"bad database URL ({type(exc).__name__}): expected {URL_FORMS}") from None
    return parsed


MARIADB_BACKENDS = frozenset({"mysql", "mariadb"})
MARIADB_SYNC_DRIVER = "pymysql"
MARIADB_ASYNC_DRIVER = "aiomysql"
MARIADB_SESSION_INIT = "SET time_zone = '+00:00'"
"""Run by every MariaDB connection kafkaguard opens: ``DATETIME(6)`` columns hold UTC, and their
``CURRENT_TIMESTAMP(6)`` defaults and ``UTC_TIMESTAMP`` comparisons agree whatever the server's zone."""


def is_mariadb(url: str | URL) -> bool:
    """Whether ``url`` names MariaDB (``mysql+...://`` or ``mariadb+...://``).

    On MariaDB kafkaguard's "schema" is a database: an engine built here with ``schema`` connects to
    that database (the application's tables must then live there too, or be qualified).
    """
    return _parse(url).get_backend_name() in MARIADB_BACKENDS


def dialect_name(url: str | URL) -> str:
    """``"postgresql"`` or ``"mariadb"`` for a URL kafkaguard can use; :class:`ConfigurationError` otherwise."""
    if is_mariadb(url):
        return "mariadb"
    driver_of(url)  # raises for anything that is not PostgreSQL
    return "postgresql"


def require_postgresql(engine: Engine | AsyncEngine | None, what: str) -> None:
    """Refuse, in one line, an ``engine`` on another database for ``what`` (a store that runs on
    PostgreSQL only so far); None passes (nothing to check)."""
    if engine is None:
        return
    name = engine.dialect.name
    if name != "postgresql":
        shown = "MariaDB" if name in MARIADB_BACKENDS else name
        raise ConfigurationError(
            f"{what} runs on PostgreSQL only so far and the engine is on {shown};"
            " see docs/operations/mariadb.md for what runs on MariaDB today"
        )


def mariadb_sync_url(url: str | URL, *, schema: str | None = None) -> URL:
    """A MariaDB ``url`` for a sync engine: PyMySQL, whatever driver it names (aiomysql speaks the
    same protocol code). ``utf8mb4`` unless the URL names a charset; ``schema`` (a database on
    MariaDB) replaces the URL's database."""
    return _mariadb_url(url, MARIADB_SYNC_DRIVER, schema)


def mariadb_async_url(url: str | URL, *, schema: str | None = None) -> URL:
    """:func:`mariadb_sync_url` for an asyncio engine (aiomysql)."""
    return _mariadb_url(url, MARIADB_ASYNC_DRIVER, schema)


def _flat_query(u: URL) -> dict[str, str]:
    """``u``'s query parameters, the last value of a repeated one (as libpq and the drivers read them)."""
    return {k: (v if isinstance(v, str) else v[-1]) for k, v in u.query.items()}


def _mariadb_url(url: str | URL, driver: str, schema: str | None) -> URL:
    u = _parse(url)
    query = _flat_query(u)
    query.setdefault("charset", "utf8mb4")
    u = u.set(drivername=f"{u.get_backend_name()}+{driver}", query=query)
    return u.set(database=schema) if schema else u


def mariadb_connect_kwargs(url: str | URL, *, schema: str | None = None) -> dict[str, Any]:
    """``pymysql.connect()`` arguments for a MariaDB ``url`` (raw connections: the relay's claims,
    the consumer's hot path), connected to ``schema`` (a database) when given.

    ``ssl_ca`` / ``ssl_cert`` / ``ssl_key`` query parameters pass through (PyMySQL's names).
    """
    u = _mariadb_url(url, MARIADB_SYNC_DRIVER, schema)
    query = _flat_query(u)
    kwargs: dict[str, Any] = {
        "host": u.host or "127.0.0.1",
        "port": int(u.port or 3306),
        "user": u.username or "",
        "password": u.password or "",
        "charset": query["charset"],
        "init_command": MARIADB_SESSION_INIT,
    }
    if u.database:
        kwargs["database"] = u.database
    for name in ("ssl_ca", "ssl_cert", "ssl_key"):
        if name in query:
            kwargs[name] = query[name]
    for name in ("connect_timeout", "read_timeout", "write_timeout"):
        if name in query:
            try:
                kwargs[name] = int(query[name])
            except ValueError:
                raise ConfigurationError(f"bad database URL: {name} is not a whole number of seconds") from None
    return kwargs


def driver_of(url: str | URL) -> str:
    """The DBAPI driver ``url`` names (``psycopg`` for a plain ``postgresql://``).

    Raises :class:`ConfigurationError` for a URL that is not PostgreSQL.
    """
    u = _parse(url)
    backend, _, driver = u.drivername.partition("+")
    if u.get_backend_name() in MARIADB_BACKENDS:
        raise ConfigurationError(
            f"the database URL is {backend}:// (MariaDB), and this part of kafkaguard runs on PostgreSQL only;"
            " see docs/operations/mariadb.md for what runs on MariaDB today"
        )
    if backend not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"kafkaguard needs PostgreSQL or MariaDB, the database URL is {backend}://; expected {URL_FORMS}"
        )
    return driver or SYNC_DRIVER


def driver_url(url: str | URL, *, asynchronous: bool = False) -> URL:
    """``url`` for a sync (psycopg 3) or an async (asyncpg when named, else psycopg 3) engine.

    The user's query parameters are kept, renamed where the two drivers spell them differently
    (``connect_timeout``/``timeout``, ``sslmode``/``ssl``). For asyncpg, ``options`` and ``timeout``
    leave the URL: :func:`connect_args` passes them the way asyncpg takes them.
    """
    return _engine_args(url, None, asynchronous)[0]


def connect_args(url: str | URL, schema: str | None = None, *, asynchronous: bool = False) -> dict[str, Any]:
    """The DBAPI ``connect()`` arguments for ``url``'s engine (sync or async) that put ``schema``
    first on the search_path, merged with the URL's own ``options`` settings."""
    return _engine_args(url, schema, asynchronous)[1]


def _engine_args(
    url: str | URL, schema: str | None, asynchronous: bool, path: str | None = None
) -> tuple[URL, dict[str, Any]]:
    u = _parse(url)
    named = driver_of(u)
    if asynchronous:
        driver = named if named in ASYNC_DRIVERS else "psycopg"  # SQLAlchemy picks psycopg's async form
    else:
        driver = named if named in ("psycopg", "psycopg2") else SYNC_DRIVER
    query = _flat_query(u)
    to_asyncpg = driver == "asyncpg"
    for libpq, asyncpg in _RENAMED:
        old, new = (libpq, asyncpg) if to_asyncpg else (asyncpg, libpq)
        if old in query and new not in query:
            query[new] = query.pop(old)
    options = query.pop("options", None)
    args: dict[str, Any] = {}
    if to_asyncpg:
        settings = _settings_in_options(options or "")
        if schema or path:
            settings["search_path"] = path or search_path(schema or "")
        if settings:
            args["server_settings"] = settings
        if "timeout" in query:
            try:
                args["timeout"] = float(query.pop("timeout"))
            except ValueError:
                raise ConfigurationError("bad database URL: timeout / connect_timeout is not a number") from None
    else:
        if named == "asyncpg":
            for name in _ASYNCPG_ONLY:
                query.pop(name, None)
        merged = _libpq_options(options, schema, path)
        if merged:
            args["options"] = merged
    return u.set(drivername=f"postgresql+{driver}", query=query), args


def search_path(schema: str) -> str:
    """The search_path kafkaguard sets for ``schema``: the schema first, then ``public``."""
    return f"{quote_ident(schema)},public" if schema != "public" else "public"


_BARE = re.compile(r"[a-z_][a-z0-9_$]*")


def quote_ident(name: str) -> str:
    """``name`` as a PostgreSQL identifier (bare when it needs no quotes)."""
    return name if _BARE.fullmatch(name) else '"' + name.replace('"', '""') + '"'


def _settings_in_options(options: str) -> dict[str, str]:
    """``-cname=value`` / ``--name=value`` settings of a libpq ``options`` string (for asyncpg)."""
    found: dict[str, str] = {}
    for part in options.replace("\\ ", "\0").split():
        part = part.replace("\0", " ")
        body = part[2:] if part.startswith("-c") else part[2:] if part.startswith("--") else ""
        name, sep, value = body.partition("=")
        if sep and name:
            found[name.strip().replace("-", "_")] = value
    return found


def _libpq_options(existing: str | None, schema: str | None, path: str | None = None) -> str | None:
    parts = [existing] if existing else []
    if schema or path:
        value = path or search_path(schema or "")
        # A space inside a libpq options value is written "\ ".
        parts.append("-csearch_path=" + value.replace("\\", "\\\\").replace(" ", "\\ "))
    return " ".join(parts) or None


PING_AFTER_IDLE = 1.0
"""Seconds a pooled connection may rest before a checkout tests it (:func:`ping_when_idle`)."""

_IDLE_SINCE = "kafkaguard_idle_since"


def ping_when_idle(engine: Engine, idle: float = PING_AFTER_IDLE) -> None:
    """Test a pooled connection of ``engine`` at checkout only when it rested more than ``idle``
    seconds (SQLAlchemy's ``pool_pre_ping`` tests it at every checkout: a round trip per
    transaction, a fifth of a transaction-per-event consumer's cost).

    A connection that failed its test is replaced, as with ``pool_pre_ping``. One that was used a
    moment ago is handed out untested: a server that went away within that moment fails the next
    statement instead, with a disconnect error (the connection is then discarded), as a restart in
    the middle of a transaction always could; the consumer retries such a transaction once at
    once when the database answers (:mod:`kafkaguard.consumer.apply`).
    """

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _rest(_dbapi: Any, record: Any) -> None:
        if record is not None:
            record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _test(dbapi: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get(_IDLE_SINCE)
        if since is not None and time.monotonic() - since <= idle:
            return
        try:
            engine.dialect.do_ping(dbapi)
        except Exception as exc:
            if isinstance(exc, engine.dialect.loaded_dbapi.Error):  # any failure of "SELECT 1": a new connection
                raise sa_exc.DisconnectionError(f"connection test failed: {type(exc).__name__}") from exc
            raise


def sync_engine(url: str | URL, *, schema: str | None = None, **kwargs: Any) -> Engine:
    """A sync SQLAlchemy engine (psycopg 3, whatever driver ``url`` names) with ``schema`` first.

    Pooled connections are tested at checkout after resting (:func:`ping_when_idle`) unless
    ``pool_pre_ping`` is given (``True``: test at every checkout, SQLAlchemy's way).
    """
    args: dict[str, Any] = {}
    if is_mariadb(url):
        u = mariadb_sync_url(url, schema=schema)
        args = {"init_command": MARIADB_SESSION_INIT}
    else:
        u, args = _engine_args(url, schema, False)
    pre_ping = kwargs.pop("pool_pre_ping", None)
    engine = sqlalchemy.create_engine(
        u, connect_args={**args, **kwargs.pop("connect_args", {})}, pool_pre_ping=bool(pre_ping), **kwargs
    )
    if pre_ping is None:
        ping_when_idle(engine)
    _ORIGINS[engine] = (_parse(url), schema)
    return engine


def async_engine(
    url: str | URL, *, schema: str | None = None, _search_path: str | None = None, **kwargs: Any
) -> AsyncEngine:
    """An asyncio SQLAlchemy engine (asyncpg when ``url`` names it, else psycopg 3; aiomysql on
    MariaDB) with ``schema`` first; pooled connections tested at checkout as :func:`sync_engine`'s."""
    args: dict[str, Any] = {}
    if is_mariadb(url):
        if importlib.util.find_spec("aiomysql") is None:
            raise ConfigurationError("an asyncio engine on MariaDB needs aiomysql: pip install 'kafkaguard[mariadb]'")
        u = mariadb_async_url(url, schema=schema)
        args = {"init_command": MARIADB_SESSION_INIT}
    else:
        u, args = _engine_args(url, schema, True, _search_path)
        if u.drivername == "postgresql+asyncpg" and importlib.util.find_spec("asyncpg") is None:
            raise ConfigurationError("a postgresql+asyncpg:// URL needs asyncpg: pip install 'kafkaguard[asyncpg]'")
    # As sync_engine: a checkout tests a connection only after it rested (a round trip per
    # transaction otherwise: async transaction-per-event ran 902 events/s with pool_pre_ping).
    pre_ping = kwargs.pop("pool_pre_ping", None)
    engine = sa_create_async_engine(
        u, connect_args={**args, **kwargs.pop("connect_args", {})}, pool_pre_ping=bool(pre_ping), **kwargs
    )
    if pre_ping is None:
        ping_when_idle(engine.sync_engine)
    _ORIGINS[engine.sync_engine] = (_parse(url), schema)
    return engine


def schema_of(engine: Engine | AsyncEngine) -> tuple[bool, str | None]:
    """``(built here, schema)``: whether kafkaguard built ``engine`` and the schema it puts first."""
    sync = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    origin = _ORIGINS.get(sync)
    return (True, origin[1]) if origin is not None else (False, None)


def async_twin(engine: Engine, **kwargs: Any) -> AsyncEngine:
    """An async engine on the database of ``engine`` (a sync engine) whose connections see the same
    tables: built here, the URL as given (asyncpg stays asyncpg) and the schema; otherwise the
    engine's URL with the search_path its connections have (asked of the database)."""
    origin = _ORIGINS.get(engine)
    if origin is not None:
        return async_engine(origin[0], schema=origin[1], **kwargs)
    if engine.dialect.name in MARIADB_BACKENDS:  # the URL names the database: the same tables
        return async_engine(engine.url, **kwargs)
    with engine.connect() as conn:
        path = str(conn.exec_driver_sql("SHOW search_path").scalar_one())
    return async_engine(engine.url, _search_path=path, **kwargs)


def create_engine(
    settings: KafkaguardSettings | None = None, *, url: str | None = None, schema: str | None = None, **kwargs: Any
) -> Engine:
    """A SQLAlchemy engine on ``settings.database_url`` (or ``url``) whose connections find kafkaguard's
    tables in ``settings.db_schema`` (or ``schema``) and the application's in ``public``.

    Any PostgreSQL URL form works (:data:`URL_FORMS`; an async driver's URL gives psycopg 3).
    ``kwargs`` go to :func:`sqlalchemy.create_engine` (``pool_size``, ``echo``, ...).
    """
    url, schema = _url_and_schema(settings, url, schema)
    return sync_engine(url, schema=schema, **kwargs)


def create_async_engine(
    settings: KafkaguardSettings | None = None, *, url: str | None = None, schema: str | None = None, **kwargs: Any
) -> AsyncEngine:
    """The asyncio form of :func:`create_engine` (asyncpg when the URL names it, else psycopg 3)."""
    url, schema = _url_and_schema(settings, url, schema)
    return async_engine(url, schema=schema, **kwargs)


def _url_and_schema(settings: KafkaguardSettings | None, url: str | None, schema: str | None) -> tuple[str, str | None]:
    if settings is None and url is None:
        from kafkaguard.settings import KafkaguardSettings  # the environment and the config file

        settings = KafkaguardSettings()
    found_url = url or (settings.database_url if settings is not None else "")
    found_schema = schema or (settings.db_schema if settings is not None else None)
    if not found_url:
        raise ConfigurationError("no database URL: pass --url or set KAFKAGUARD_DATABASE_URL")
    return found_url, found_schema


def libpq_conninfo(url: str | URL, *, schema: str | None = None) -> str:
    """A libpq connection string for raw psycopg connections (the relay, LISTEN/NOTIFY), from any
    URL form; ``schema`` first on the search_path, the URL's own ``options`` kept."""
    u, args = _engine_args(url, schema, False)
    parts = {
        "host": u.host or "127.0.0.1",
        "port": str(u.port or 5432),
        "dbname": u.database or "",
        "user": u.username or "",
        "password": u.password or "",
    }
    for name, value in _flat_query(u).items():
        if name in _LIBPQ_KEYS:
            parts[name] = value
    if args.get("options"):
        parts["options"] = args["options"]
    return " ".join(f"{k}='{_quote(v)}'" for k, v in parts.items() if v)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")
