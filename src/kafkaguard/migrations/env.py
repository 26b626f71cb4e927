"""Alembic environment: runs kafkaguard's migrations in the schema named by ``-x schema=`` or the URL's search_path.

On MariaDB (a ``mysql+...://`` or ``mariadb+...://`` URL) a schema is a database: it is created if
missing and becomes the connection's default; without one the URL's database is used. Each version
branches on the dialect (:mod:`kafkaguard.migrations.portable`).
"""

from __future__ import annotations

import sqlalchemy
from alembic import context
from sqlalchemy import Engine, text
from sqlalchemy.pool import NullPool

from kafkaguard.db.engine import is_mariadb, mariadb_sync_url, quote_ident, sync_engine
from kafkaguard.db.tables import metadata

config = context.config
schema = config.attributes.get("schema") or context.get_x_argument(as_dictionary=True).get("schema")
url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True, version_table_schema=schema)
    with context.begin_transaction():
        context.run_migrations()


def _engine() -> Engine:
    if is_mariadb(str(url)):
        return sqlalchemy.create_engine(mariadb_sync_url(str(url)), poolclass=NullPool)
    return sync_engine(str(url))  # any URL form: asyncpg and plain postgresql:// run on psycopg 3


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        if schema and connection.dialect.name in ("mysql", "mariadb"):
            quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
            connection.execute(text(f"CREATE DATABASE IF NOT EXISTS {quoted}"))
            connection.execute(text(f"USE {quoted}"))
            connection.commit()
        elif schema:
            connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}"))
            connection.execute(text(f"SET search_path TO {quote_ident(schema)}"))
            connection.commit()
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table_schema=schema,
            include_schemas=False,
            include_name=lambda name, type_, parent: not (type_ == "table" and name == "alembic_version"),
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
