"""What the ``kafkaguard`` command prints for an exception, and with which exit code (pure).

One table for every error that reaches the command line, so that each one is a single line on
stderr and no traceback (``kafkaguard --debug ...`` adds it):

=============================================  ====  ==========================================
exception                                      exit  line
=============================================  ====  ==========================================
Typer/click usage error (bad option value,     2     click's message + where to read the help
unknown option, missing argument)
:class:`UsageProblem` (a refused combination)  2     its message
database connection error anywhere in the      1     "cannot reach the database at host:port/db
cause chain (SQLAlchemy or psycopg)                  (reason)"; an authentication failure says
                                                     so. Never the password, never SQL parameters
a missing kafkaguard table or column           1     which table, and ``kafkaguard db upgrade``
any other database error                       1     the server's message, no SQL parameters
:class:`~kafkaguard.errors.KafkaguardError`    1     its message
invalid settings (pydantic)                    1     each field and the problem, not the value
anything else                                  1     class and message, and ``--debug``
=============================================  ====  ==========================================

Passwords are removed from every line: those in URLs and ``password=`` settings, and the passwords
of the database URLs given (``--url``, ``KAFKAGUARD_DATABASE_URL``) wherever they appear.
Messages are made one line (line breaks and control characters escaped) and bounded, since
they may quote outside data (a key, an event type).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import psycopg
import typer
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from kafkaguard.errors import ConfigurationError, KafkaguardError

USAGE = 2
FAILURE = 1
MAX_MESSAGE = 2000  # characters of one error line
URL_FORM = "expected a SQLAlchemy URL: postgresql+psycopg://, then user:password@host:port/database"

# libpq's wording when the server refused the credentials (not when it could not be reached).
_AUTH_PATTERNS = (
    "authentication failed",
    "no password supplied",
    "password authentication",
    "pg_hba.conf",
    'role "',  # FATAL: role "x" does not exist
)


class UsageProblem(ConfigurationError):
    """The command line asks for something that cannot be done as given (exit 2); the message says
    what to pass instead."""


@dataclass(frozen=True)
class Failure:
    """One error line and the exit code (``help``: the message is a help text, printed as it is)."""

    message: str
    exit_code: int
    help: bool = False


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line: line breaks and other control or format characters escaped, at most
    ``limit`` characters (plus a note of the cut)."""
    collapsed = " ".join(part.strip() for part in text.splitlines() if part.strip())
    safe = re.sub(r"[^\x20-\x7e]", _escape_char, collapsed)
    if len(safe) <= limit:
        return safe
    return f"{safe[:limit]}…({len(safe)} chars)"


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    if unicodedata.category(char)[0] in "CZ" and char != " ":  # control, format, surrogate, separators
        return char.encode("unicode_escape", "backslashreplace").decode("ascii")
    return char


_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_CONNINFO_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without passwords: those of URLs and ``password=`` settings in it, and ``secrets``."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _CONNINFO_PASSWORD.sub(r"\1***", text)
    for secret in secrets:
        if len(secret) >= 4:  # shorter ones would blank out ordinary words
            text = text.replace(secret, "***")
    return text


def secrets_of(args: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """Passwords of the database URLs the command line (``--url``) and the environment name, and
    the ``kafka_security`` secrets of the environment."""
    urls = [environ.get("KAFKAGUARD_DATABASE_URL", "")]
    for i, arg in enumerate(args):
        if arg == "--url" and i + 1 < len(args):
            urls.append(args[i + 1])
        elif arg.startswith("--url="):
            urls.append(arg.removeprefix("--url="))
    found = []
    for url in urls:
        try:
            password = make_url(url).password if url else None
        except Exception:  # noqa: BLE001 - not a URL: nothing to take from it
            password = None
        if password:
            found.append(str(password))
    # kafka_security's secrets given in the environment: a last line of defence if a message echoes one.
    for field in ("PASSWORD", "OAUTH_CLIENT_SECRET", "KEY_PASSWORD"):
        value = environ.get(f"KAFKAGUARD_KAFKA_SECURITY__{field}", "")
        if value:
            found.append(value)
    return found


def describe(exc: BaseException, secrets: Iterable[str] = ()) -> Failure:
    """The line and exit code for ``exc`` (see the module's table), passwords removed."""
    failure = _describe(exc)
    return Failure(redact(failure.message, secrets), failure.exit_code, failure.help)


def _describe(exc: BaseException) -> Failure:
    if isinstance(exc, typer.TyperException):  # typer's vendored click: usage errors and friends
        return _click_failure(exc)
    if isinstance(exc, UsageProblem):
        return Failure(one_line(str(exc)), USAGE)
    # A kafkaguard error that wraps a lost connection says less than the connection error itself;
    # any other database error it wraps was translated on purpose, so its own message wins.
    database = database_failure(exc, connection_only=isinstance(exc, KafkaguardError))
    if database is not None:
        return Failure(one_line(database), FAILURE)
    if isinstance(exc, KafkaguardError):
        return Failure(one_line(str(exc) or type(exc).__name__), FAILURE)
    if isinstance(exc, ValidationError):
        return Failure(one_line(_settings_problem(exc)), FAILURE)
    click_failure = _plain_click_failure(exc)
    if click_failure is not None:
        return click_failure
    text = str(exc)
    return Failure(
        one_line(f"unexpected {type(exc).__name__}{': ' + text if text else ''} (run `kafkaguard --debug ...` "
                 "for the traceback)"),
        FAILURE,
    )  # fmt: skip


def _click_failure(exc: typer.TyperException) -> Failure:
    code = int(getattr(exc, "exit_code", FAILURE))
    message = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and code == USAGE:
        if "\n" in message or not message.strip():
            # No arguments: the "error" is the help text (Typer's Rich help has printed it already).
            return Failure(message.strip(), code, help=True)
        return Failure(one_line(f"{message} (see `{ctx.command_path} --help`)"), code)
    return Failure(one_line(message), code)


def _plain_click_failure(exc: BaseException) -> Failure | None:
    """A usage error of the stand-alone ``click`` package (a user's callback may raise one)."""
    try:
        import click
    except ImportError:  # pragma: no cover - click ships with uvicorn
        return None
    if not isinstance(exc, click.ClickException):
        return None
    return Failure(one_line(exc.format_message()), int(exc.exit_code))


def _settings_problem(exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or '(settings)'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    where = "(environment KAFKAGUARD_... or the config file)"
    return f"invalid settings ({exc.title}): " + "; ".join(problems) + f" {where}"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, what it was raised from (or while handling), and the DBAPI error SQLAlchemy wraps."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        orig = current.orig if isinstance(current, sa_exc.DBAPIError) else None
        if isinstance(orig, BaseException) and orig not in seen:
            seen.append(orig)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return seen


def database_failure(exc: BaseException, *, connection_only: bool = False) -> str | None:
    """The line for a database error in ``exc``'s cause chain (only a connection failure when
    ``connection_only``), or None if there is none."""
    chain = _causes(exc)
    pg_errors = [e for e in chain if isinstance(e, psycopg.Error)]
    for e in pg_errors:
        if isinstance(e, psycopg.OperationalError | psycopg.InterfaceError) and e.sqlstate is None:
            return _connection_problem(e)
    if connection_only:
        return None
    for e in pg_errors:
        if isinstance(e, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
            return (
                f"kafkaguard's tables are missing or out of date{_at(e)} ({_server_message(e)}): "
                "run `kafkaguard db upgrade` with the same --url and --schema"
            )
        if isinstance(e, psycopg.errors.InvalidSchemaName):
            return f"{_server_message(e)}{_at(e)}: check --schema, or run `kafkaguard db upgrade` to create it"
    for e in pg_errors:
        if isinstance(e, psycopg.OperationalError):
            return f"the database{_at(e)} failed: {_server_message(e)}"
        return f"database error{_at(e)}: {type(e).__name__}: {_server_message(e)}"
    for link in chain:
        if isinstance(link, sa_exc.TimeoutError):
            return "no database connection became free in time (the pool is exhausted); try again"
        if isinstance(link, sa_exc.NoSuchModuleError):
            return f"bad database URL: {link}; {URL_FORM}"
        if isinstance(link, sa_exc.ArgumentError):  # its message quotes the URL, password included
            return f"bad database URL: it cannot be parsed; {URL_FORM}"
    return None


def _connection_problem(e: psycopg.Error) -> str:
    reason = _reason(e)
    where = _where(e)
    lowered = reason.lower()
    if any(p in lowered for p in _AUTH_PATTERNS):
        return (
            f"the database at {where} refused the login{_user(e)} ({reason}): "
            "check the user and password in --url / KAFKAGUARD_DATABASE_URL"
        )
    if "does not exist" in lowered and "database" in lowered:
        return f"the database at {where} does not exist ({reason}): check the database name in the URL"
    return f"cannot reach the database at {where} ({reason})"


def _reason(e: psycopg.Error) -> str:
    """libpq's explanation without the "connection to server at ... failed:" preamble."""
    text = _pgconn_text(e, "error_message") or str(e)
    first = next((line.strip() for line in text.splitlines() if line.strip()), text)
    if " failed: " in first:
        first = first.rsplit(" failed: ", 1)[1]
    return re.sub(r"^(FATAL|ERROR):\s+", "", first).strip() or type(e).__name__


def _at(e: psycopg.Error) -> str:
    """`` at host:port/dbname`` when the error knows its connection (a statement's error does not)."""
    return f" at {_where(e)}" if getattr(e, "pgconn", None) is not None else ""


def _where(e: psycopg.Error) -> str:
    """``host:port/dbname`` of the connection the error came from (never the password)."""
    if getattr(e, "pgconn", None) is None:
        return "the configured URL"
    host = _pgconn_text(e, "host") or "localhost"
    port = _pgconn_text(e, "port") or "5432"
    return f"{host}:{port}/{_pgconn_text(e, 'db')}"


def _user(e: psycopg.Error) -> str:
    user = _pgconn_text(e, "user")
    return f" of user {user!r}" if user else ""


def _pgconn_text(e: psycopg.Error, name: str) -> str:
    """One attribute of the connection an error came from; "" when it is gone (a closed PGconn
    raises on every attribute). Only host, port, db and user are ever read: the object also holds
    the password."""
    try:
        value = getattr(e.pgconn, name, b"")
    except Exception:  # noqa: BLE001 - a closed connection: the location is unknown, not an error
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value) if value else ""


def _server_message(e: psycopg.Error) -> str:
    primary = e.diag.message_primary if e.diag is not None else None
    return primary or next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
