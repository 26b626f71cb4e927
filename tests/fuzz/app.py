"""The handler registry of the fuzz tests (also importable by ``kafkaguard consume``).

``fuzz.applied`` stores each event it applies in ``fuzz_effects``: its id, key, type and payload as
``jsonb``. A payload PostgreSQL refuses there (``\\u0000``, a lone surrogate, ``NaN``) makes the
handler fail with a data exception (SQLSTATE class 22), which issue 13 says is permanent. A payload
``{"fail": "retriable"}`` raises a retriable error, ``{"fail": "permanent"}`` a permanent one.
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


class AskedToFailError(RuntimeError):
    """The payload asked the handler to fail (retriable by the default classifier)."""


@registry.handler(TYPE)
def store_effect(event: Event, ctx: HandlerContext[Session]) -> None:
    fail = event.payload.get("fail")
    if fail == "retriable":
        raise AskedToFailError("the payload asked for a retriable failure")
    if fail == "permanent":
        raise ValueError("the payload asked for a permanent failure")
    ctx.session.execute(
        text("INSERT INTO fuzz_effects (event_id, key, type, payload) VALUES (:e, :k, :t, CAST(:p AS jsonb))"),
        {"e": event.event_id, "k": event.key, "t": event.type, "p": json.dumps(event.payload)},
    )


def create_tables(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
