"""Tell a refused login from an outage, and check the login once at start.

PostgreSQL refusing the credentials (SQLSTATE 28P01 invalid_password, 28000
invalid_authorization_specification: unknown role, no ``pg_hba.conf`` entry) is not an outage:
retrying with the same password never helps, so workers stop at start with one line
(:class:`~kafkaguard.errors.AuthenticationError`) instead of "reconnecting" forever. libpq reports
a failed connection without a SQLSTATE (psycopg's ``sqlstate`` is None), so its wording is matched
too. Lines name host, port, database and user, never the password.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from kafkaguard.errors import AuthenticationError

AUTH_SQLSTATES = frozenset({"28P01", "28000"})

# libpq's wording when the server refused the credentials (not when it could not be reached).
_REFUSED = re.compile(
    r"authentication failed|no password supplied|pg_hba\.conf|role \"[^\"]*\" does not exist|password is required",
    re.IGNORECASE,
)
_LOGIN_TIMEOUT_S = 10


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        orig = getattr(current, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(orig, BaseException) and orig not in seen:
            seen.append(orig)
        current = current.__cause__ or current.__context__
    return seen


def refused_reason(exc: BaseException) -> str | None:
    """libpq's reason when ``exc`` (or what it wraps) is PostgreSQL refusing the login; else None."""
    for link in _chain(exc):
        if not isinstance(link, psycopg.Error):
            continue
        text = str(link)
        if link.sqlstate in AUTH_SQLSTATES or _REFUSED.search(text):
            first = next((line.strip() for line in text.splitlines() if line.strip()), text)
            reason = first.rsplit(" failed: ", 1)[-1]
            return re.sub(r"^(FATAL|ERROR):\s+", "", reason).strip()
    return None


def login_refused(conninfo: str, reason: str) -> AuthenticationError:
    """The error for PostgreSQL at ``conninfo`` refusing the login (names host/port/db/user only)."""
    try:
        parts = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        parts = {}
    where = f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"
    user = f" of user {parts['user']!r}" if parts.get("user") else ""
    return AuthenticationError(
        f"PostgreSQL at {where} refused the login{user} ({reason}): check the user and password in "
        "--url / KAFKAGUARD_DATABASE_URL"
    )


def check_login(conninfo: str) -> str | None:
    """Connect once to ``conninfo`` (libpq string) and disconnect.

    Raises :class:`AuthenticationError` when the server refuses the credentials; returns None
    when the login worked, else why the server could not be reached (an outage: the caller's
    retries deal with it). Waits at most 10 s for the connection.
    """
    try:
        with psycopg.connect(conninfo, connect_timeout=_LOGIN_TIMEOUT_S):
            return None
    except psycopg.Error as exc:
        reason = refused_reason(exc)
        if reason is not None:
            raise login_refused(conninfo, reason) from None
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        return first.rsplit(" failed: ", 1)[-1]


MARIADB_LOGIN_REFUSALS = frozenset({1044, 1045, 1698})
"""MariaDB error numbers of a refused login: access denied to the database, for the user, by a plugin."""


def mariadb_login_refused(kwargs: dict[str, Any], code: object) -> AuthenticationError:
    """The error for MariaDB refusing the login of ``kwargs`` (``pymysql.connect`` arguments: names
    host/port/database/user only, never the password)."""
    where = f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('database', '')}"
    return AuthenticationError(
        f"MariaDB at {where} refused the login of user {kwargs.get('user')!r} ({code}): check the user and"
        " password in --url / KAFKAGUARD_DATABASE_URL"
    )
