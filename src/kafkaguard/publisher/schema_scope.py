"""The Publisher's statements find kafkaguard's tables in ``db_schema`` on the caller's own session.

``Publisher.publish(session, event)`` runs in the application's transaction, on the application's
engine, whose search_path kafkaguard does not set (unless it was built by
:func:`kafkaguard.db.engine.create_engine`). So, per engine (checked once, cached):

- the outbox (outbox mode) is checked to exist in the schema (``db_schema``, else the search_path's
  first): a missing one raises :class:`~kafkaguard.errors.SchemaNotReadyError` before anything is
  written (direct and http modes use the dead-letter table only when delivery fails, and a store
  that cannot take the dead letter then rolls back with ``PublishUnavailableError`` as ever);
- when the connection's ``current_schema()`` is already ``db_schema`` nothing else happens;
- otherwise kafkaguard's statements of one ``publish`` run with ``db_schema`` put first on the
  search_path for that transaction only (``set_config(..., is_local => true)``) and the previous
  search_path is put back right after them, so the application's own statements in the same
  transaction see exactly the search_path they had. Two round trips per publish: build the engine
  with ``kafkaguard.create_engine(settings)`` to avoid them.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.engine import quote_ident, schema_of
from kafkaguard.db.readiness import MISSING_SQL, problem

_PUT_FIRST = text(
    "SELECT current_setting('search_path'),"
    " set_config('search_path', :first || ',' || current_setting('search_path'), true)"
)
_PUT_BACK = text("SELECT set_config('search_path', :old, true)")
_CURRENT = text("SELECT current_schema()")
_MISSING = text(MISSING_SQL)


def _engine_of(session: Session) -> Engine | None:
    try:
        bind: Any = session.get_bind()
    except Exception:  # noqa: BLE001 - an unbound session: checked at each publish then
        return None
    if isinstance(bind, Engine):
        return bind
    if isinstance(bind, Connection):
        return bind.engine
    return None


class SchemaScope:
    """Per engine: are the tables there, and must ``db_schema`` be put first for kafkaguard's statements?"""

    def __init__(self, schema: str | None) -> None:
        self.schema = schema
        # engine -> (must the schema be put first, the tables found there already)
        self._known: weakref.WeakKeyDictionary[Engine, tuple[bool, frozenset[str]]] = weakref.WeakKeyDictionary()

    def _cached(self, engine: Engine | None, tables: tuple[str, ...]) -> bool | None:
        """Whether the path must be set, when nothing is left to check for ``engine``; None otherwise."""
        if engine is None:
            return None
        known = self._known.get(engine)
        if known is not None and known[1].issuperset(tables):
            return known[0]
        built, schema = schema_of(engine)
        if built and schema == self.schema and self.schema is not None and not tables:
            return False  # its connections put the schema first already
        return None

    def _judge(self, engine: Engine | None, tables: tuple[str, ...], row: Any, current: str | None) -> bool:
        err = problem(self.schema, row[0] if row else None, list(row[1] or []) if row else [])
        if err is not None:
            raise err
        needs = self.schema is not None and current != self.schema
        if engine is not None:
            before = self._known.get(engine, (needs, frozenset()))[1]
            self._known[engine] = (needs, before | frozenset(tables))
        return needs

    def _params(self, tables: tuple[str, ...]) -> dict[str, Any]:
        return {"schema": self.schema, "tables": list(tables)}

    @contextmanager
    def around(self, session: Session, tables: tuple[str, ...] = ()) -> Iterator[None]:
        """Run the block's statements with kafkaguard's tables found in the schema, ``tables`` checked
        to exist there first (see the module docstring)."""
        engine = _engine_of(session)
        needs = self._cached(engine, tables)
        if needs is None:
            try:  # in a savepoint: a store that cannot answer leaves the caller's transaction usable
                with session.begin_nested():
                    row = session.execute(_MISSING, self._params(tables)).first()
                    current = session.execute(_CURRENT).scalar()
            except SQLAlchemyError:
                needs = self.schema is not None  # not known now (asked again next time): put it first
            else:
                needs = self._judge(engine, tables, row, current)
        if not needs:
            yield
            return
        assert self.schema is not None
        old = session.execute(_PUT_FIRST, {"first": quote_ident(self.schema)}).scalar()
        yield
        if session.in_transaction():
            session.execute(_PUT_BACK, {"old": old})

    @asynccontextmanager
    async def around_async(self, session: AsyncSession, tables: tuple[str, ...] = ()) -> AsyncIterator[None]:
        """:meth:`around` for an :class:`AsyncSession`."""
        engine = _engine_of(session.sync_session)
        needs = self._cached(engine, tables)
        if needs is None:
            try:
                async with session.begin_nested():
                    row = (await session.execute(_MISSING, self._params(tables))).first()
                    current = (await session.execute(_CURRENT)).scalar()
            except SQLAlchemyError:
                needs = self.schema is not None
            else:
                needs = self._judge(engine, tables, row, current)
        if not needs:
            yield
            return
        assert self.schema is not None
        old = (await session.execute(_PUT_FIRST, {"first": quote_ident(self.schema)})).scalar()
        yield
        if session.in_transaction():
            await session.execute(_PUT_BACK, {"old": old})
