"""What kafkaguard's migrations use on MariaDB in place of PostgreSQL's types and defaults.

Every version runs on both dialects: its PostgreSQL statements are unchanged, and
``if on_mariadb(): ...`` branches create the MariaDB equivalent (Debian's MariaDB 10.11):

- ``jsonb`` -> ``JSON`` (MariaDB: ``LONGTEXT`` with a ``json_valid`` check), literal defaults ``'{}'``;
- ``uuid`` -> ``CHAR(36)``, the text form with dashes (what Debezium's router reads as the event id);
  the outbox's default ``gen_random_uuid()`` -> ``uuid()`` (a version-1 UUID: unique, not random);
- identity columns -> ``AUTO_INCREMENT`` (one per table, and it must be a key: the outbox's ``seq``
  has its unique key first, then becomes ``AUTO_INCREMENT``);
- ``timestamptz`` -> ``DATETIME(6)`` holding UTC (the dev server runs with ``time_zone = '+00:00'``),
  ``now()`` -> ``CURRENT_TIMESTAMP(6)``;
- ``text`` -> ``LONGTEXT``, ``bytea`` -> ``LONGBLOB``; a text column inside a primary or unique key
  is ``VARCHAR(255)`` (a key holds at most 3072 bytes): consumer groups and topics (Kafka's topic
  names are at most 249 characters);
- partial and hash indexes -> plain B-tree indexes (on a text column, over its first 255 characters);
- the outbox shard: ``CRC32(aggregateid) & 63`` instead of ``hashtext(aggregateid) & 63`` (another hash:
  the numbers differ from PostgreSQL's, the rule "a key always lands in one shard" holds).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

KEY_PREFIX = 255
"""Characters of a text column an index on it covers (equality look-ups recheck the whole value)."""

OUTBOX_SHARD = "crc32(`aggregateid`) & 63"


def on_mariadb() -> bool:
    """Whether the migration runs against MariaDB (SQLAlchemy's MySQL dialect); works offline (``--sql``) too."""
    return op.get_context().dialect.name in ("mysql", "mariadb")


def json() -> mysql.JSON:
    return mysql.JSON()


def json_default(literal: str) -> sa.TextClause:
    """A JSON column's default: the JSON text ``literal`` (``{}``, ``[]``)."""
    return sa.text(f"'{literal}'")


def uuid() -> mysql.CHAR:
    return mysql.CHAR(36, charset="ascii", collation="ascii_bin")


def timestamp() -> mysql.DATETIME:
    return mysql.DATETIME(fsp=6)


def now() -> sa.TextClause:
    return sa.text("CURRENT_TIMESTAMP(6)")


def text() -> mysql.LONGTEXT:
    return mysql.LONGTEXT()


def key_text() -> TypeEngine[str]:
    """A text column that is part of a primary or unique key."""
    return mysql.VARCHAR(255)


def blob() -> mysql.LONGBLOB:
    return mysql.LONGBLOB()
