"""The handler registry of the fuzz tests (also importable by ``kafkaguard consume``).

``fuzz.applied`` stores each event it applies in ``fuzz_effects``: its id, key, type and payload as
``jsonb``. A payload PostgreSQL refuses there (``\\u0000``, a lone surrogate, ``NaN``) makes the
handler fail with a data exception (SQLSTATE class 22), which issue 13 says is permanent. A payload
``{"fail": "retriable"}`` raises a retriable error, ``{"fail": "permanent"}`` a permanent one.
On MariaDB (the fuzz suite's second leg) the table is :data:`MARIADB_TABLE`: the payload a ``JSON``
column (``LONGTEXT`` checked by ``json_valid``), the event id its text.
"""

from __future__ import annotations

import json

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

from kafkaguard.consumer import HandlerContext, HandlerRegistry
from kafkaguard.envelope import Event

TYPE = "fuzz.applied"
UNHANDLED_TYPE = "fuzz.nobody-handles-this"

registry = HandlerRegistry()

SCHEMA_SQL = """
CREATE TABLE fuzz_effects (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL,
    key text NOT NULL,
    type text NOT NULL,
    payload jsonb NOT NULL
);
"""


MARIADB_TABLE = (
    "CREATE TABLE fuzz_effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id CHAR(36) NOT NULL, "
    "`key` LONGTEXT NOT NULL, type LONGTEXT NOT NULL, payload JSON NOT NULL, KEY ix_fuzz_event (event_id))"
)


class AskedToFailError(RuntimeError):
    """The payload asked the handler to fail (retriable by the default classifier)."""


@registry.handler(TYPE)
def store_effect(event: Event, ctx: HandlerContext[Session]) -> None:
    fail = event.payload.get("fail")
    if fail == "retriable":
        raise AskedToFailError("the payload asked for a retriable failure")
    if fail == "permanent":
        raise ValueError("the payload asked for a permanent failure")
    if ctx.session.get_bind().dialect.name == "postgresql":
        sql = "INSERT INTO fuzz_effects (event_id, key, type, payload) VALUES (:e, :k, :t, CAST(:p AS jsonb))"
        event_id: object = event.event_id
    else:
        sql = "INSERT INTO fuzz_effects (event_id, `key`, type, payload) VALUES (:e, :k, :t, :p)"
        event_id = str(event.event_id)
    ctx.session.execute(text(sql), {"e": event_id, "k": event.key, "t": event.type, "p": json.dumps(event.payload)})


def create_tables(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
