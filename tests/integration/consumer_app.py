"""A handler registry for the consumer tests (imported by in-process workers and `kafkaguard consume`).

Handler ``test.applied`` inserts one row into ``effects`` per application — deliberately with no
unique constraint, so a double application shows up as two rows. It raises for a key listed in
``broken_keys`` (so a test can break a key and later repair it).
"""

from __future__ import annotations

import uuid

import psycopg
from confluent_kafka import Producer
from sqlalchemy import text
from sqlalchemy.orm import Session

from kafkaguard.consumer import BatchContext, HandlerContext, HandlerRegistry
from kafkaguard.envelope import Event

registry = HandlerRegistry()

SCHEMA_SQL = """
CREATE TABLE effects (
    id bigserial PRIMARY KEY,
    event_id uuid NOT NULL,
    key text NOT NULL,
    seq int NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE broken_keys (key text PRIMARY KEY);
"""


class BrokenKeyError(RuntimeError):
    """The test marked this key as broken."""


@registry.handler("test.applied")
def apply_effect(event: Event, ctx: HandlerContext[Session]) -> None:
    if ctx.session.execute(text("SELECT 1 FROM broken_keys WHERE key = :k"), {"k": event.key}).first():
        raise BrokenKeyError(f"key {event.key} is broken")
    ctx.session.execute(
        text("INSERT INTO effects (event_id, key, seq) VALUES (:e, :k, :s)"),
        {"e": event.event_id, "k": event.key, "s": int(event.payload["seq"])},
    )


def create_tables(conninfo: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)


def make_events(n: int, keys: int) -> list[Event]:
    """``n`` events over ``keys`` keys, each key's ``seq`` counting up from 0."""
    seqs: dict[str, int] = {}
    out = []
    for i in range(n):
        key = f"k{i % keys}"
        seqs[key] = seqs.get(key, -1) + 1
        out.append(Event(type="test.applied", key=key, payload={"seq": seqs[key], "i": i}))
    return out


def produce(bootstrap: str, topic: str, events: list[Event], *, twice: set[int] | frozenset[int] = frozenset()) -> int:
    """Produce with a plain client; events whose index is in ``twice`` are sent again right after."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    sent = 0
    for i, e in enumerate(events):
        for _ in range(2 if i in twice else 1):
            producer.produce(topic, key=e.key.encode(), value=e.payload_bytes(), headers=e.kafka_headers())
            sent += 1
            if sent % 1000 == 0:
                producer.poll(0)
    assert producer.flush(60) == 0
    return sent


def new_group() -> str:
    return f"g-{uuid.uuid4().hex[:8]}"


def batch_registry(calls: list[int]) -> HandlerRegistry:
    """``test.applied`` as a batch handler (one executemany per run; raises if any event's key is
    broken), ``test.other`` as a per-event handler writing to ``effects`` too; ``calls`` gets the
    size of each batch handler call."""
    reg = HandlerRegistry()

    @reg.batch_handler("test.applied")
    def apply_effects(events: list[Event], ctx: BatchContext[Session]) -> None:
        assert len(ctx.positions) == len(events)
        keys = sorted({e.key for e in events})
        broken = ctx.session.execute(text("SELECT key FROM broken_keys WHERE key = ANY(:k)"), {"k": keys}).first()
        if broken:
            raise BrokenKeyError(f"key {broken[0]} is broken")
        rows = [{"e": e.event_id, "k": e.key, "s": int(e.payload["seq"])} for e in events]
        ctx.session.execute(text("INSERT INTO effects (event_id, key, seq) VALUES (:e, :k, :s)"), rows)
        calls.append(len(events))

    reg.register("test.other", apply_effect)
    return reg
