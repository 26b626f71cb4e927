"""A handler registry for the operator-command tests on MariaDB (``--app`` of `dead-letters replay`
and `restore listener`).

Handler ``test.applied`` inserts one ``effects`` row per application (no unique constraint: a double
application shows as two rows) and raises for a key listed in ``broken_keys``.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from kafkaguard.consumer import HandlerContext, HandlerRegistry
from kafkaguard.envelope import Event

registry = HandlerRegistry()

TABLES = (
    "CREATE TABLE effects (id BIGINT AUTO_INCREMENT PRIMARY KEY, event_id CHAR(36) NOT NULL, "
    "k VARCHAR(200) NOT NULL, seq INT NOT NULL)",
    "CREATE TABLE broken_keys (k VARCHAR(200) PRIMARY KEY)",
)


class BrokenKeyError(RuntimeError):
    """The test marked this key as broken."""


@registry.handler("test.applied")
def apply_effect(event: Event, ctx: HandlerContext[Session]) -> None:
    if ctx.session.execute(text("SELECT 1 FROM broken_keys WHERE k = :k"), {"k": event.key}).first():
        raise BrokenKeyError(f"key {event.key} is broken")
    ctx.session.execute(
        text("INSERT INTO effects (event_id, k, seq) VALUES (:e, :k, :s)"),
        {"e": str(event.event_id), "k": event.key, "s": int(event.payload["seq"])},
    )


def create_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        for statement in TABLES:
            conn.execute(text(statement))
