"""Issue 13's poison messages, each from a plain client, on the real Kafka and PostgreSQL.

For each input: the worker keeps running, the poison has one durable outcome (a dead letter that
`kafkaguard dead-letters list` finds, with its raw key, value and header bytes intact), and the good
event after it on the same partition is applied exactly once; the group's committed offset reaches
the end of the partition (nothing stalls). Batch mode is run too: there a poison used to keep even
the event before it from being committed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTP

from kafkaguard import raw_headers
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.envelope import Event
from kafkaguard.policies.backoff import Exponential
from kafkaguard.policies.retry import RetryPolicy
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app as app
from tests.integration.consumer_helpers import REPO, rows, scalar, start_worker, wait_until

FAST_RETRY = RetryPolicy(max_attempts=2, backoff=Exponential(base=0.05, factor=2, max_seconds=0.1, jitter=0))

Headers = list[tuple[str, bytes | None]]


def good(key: str, seq: int = 0, **extra: str) -> Event:
    return Event(type="test.applied", key=key, payload={"seq": seq}, headers=extra)


def as_message(event: Event) -> tuple[bytes, bytes, Headers]:
    return event.key.encode(), event.payload_bytes(), list(event.kafka_headers())


@dataclass
class Poison:
    """One message from a plain client and what must become of it."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    reason: str | None  # the dead letter's reason; None: it is a valid event and is applied
    kcat_headers: list[bytes] = field(default_factory=list)  # raw -H arguments (names Python cannot send)
    broken_key: str | None = None  # the key is made to fail first, so the poison is parked behind it


def _deep_json(levels: int) -> bytes:
    return b'{"seq": 0, "deep": ' + b"[" * levels + b"]" * levels + b"}"


def poisons() -> dict[str, Poison]:
    base = good("poison")
    hdrs = list(base.kafka_headers())
    long_type = "t" * 300
    return {
        "deep_json": Poison(b"deep", _deep_json(2000), hdrs, "too_deep"),
        "key_300_chars": Poison(b"k" * 300, base.payload_bytes(), hdrs, None),
        "key_5000_chars": Poison(b"k" * 5000, base.payload_bytes(), hdrs, None),
        "type_300_chars": Poison(
            b"long-type",
            b"{}",
            list(Event(type=long_type, key="long-type", payload={}).kafka_headers()),
            "unknown_type",
        ),
        "nul_in_key": Poison(b"ab\x00cd", base.payload_bytes(), hdrs, "invalid_key"),
        "nul_in_type": Poison(
            b"nul-type", b"{}", [(n, b"test\x00applied" if n == "type" else v) for n, v in hdrs], "wrong_shape"
        ),
        "nul_in_header_of_dead_letter": Poison(
            b"nul-header",
            b"{}",
            [*Event(type="test.nobody", key="nul-header", payload={}).kafka_headers(), ("note", b"a\x00b")],
            "unknown_type",
        ),
        "nul_in_header_of_parked": Poison(
            b"parked-key",
            base.payload_bytes(),
            [*good("parked-key", 1).kafka_headers(), ("note", b"a\x00b"), ("note", None)],
            "parked",
            broken_key="parked-key",
        ),
        "header_name_not_utf8": Poison(
            b"bad-header-name", base.payload_bytes(), [], "unreadable", kcat_headers=[b"\xff\xfe=x", b"ok=y"]
        ),
    }


def _produce_kcat(bootstrap: str, topic: str, p: Poison) -> None:
    cmd: list[str | bytes] = ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", "0"]
    if p.key is not None:
        cmd += [b"-k", p.key]
    for h in p.kcat_headers:
        cmd += [b"-H", h]
    subprocess.run(cmd, input=p.value or b"", check=True, timeout=30)


def _committed(bootstrap: str, group: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        (tp,) = c.committed([KafkaTP(topic, 0)], timeout=10)
        return int(tp.offset)
    except KafkaException:  # the group coordinator is still being elected: ask again
        return -1
    finally:
        c.close()


@pytest.mark.parametrize("batch_size", [1, 50], ids=["per-event", "batch"])
@pytest.mark.parametrize("case", list(poisons()))
def test_poison_is_dead_lettered_and_the_next_event_applied(
    case: str, batch_size: int, kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    p = poisons()[case]
    topic = topics("poison", partitions=1)
    before, after = good("before"), good("after")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    sent = 0
    if p.broken_key is not None:
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            conn.execute("INSERT INTO broken_keys VALUES (%s)", (p.broken_key,))
        k, v, h = as_message(good(p.broken_key, 0))
        producer.produce(topic, key=k, value=v, headers=h, partition=0)
        sent += 1
    k, v, h = as_message(before)
    producer.produce(topic, key=k, value=v, headers=h, partition=0)
    assert producer.flush(30) == 0
    if p.kcat_headers:
        _produce_kcat(kafka_bootstrap, topic, p)
    else:
        producer.produce(topic, key=p.key, value=p.value, headers=p.headers, partition=0)
    k, v, h = as_message(after)
    producer.produce(topic, key=k, value=v, headers=h, partition=0)
    assert producer.flush(30) == 0
    sent += 3

    group = app.new_group()
    settings = ConsumerSettings(group_id=group, topics=(topic,), retry=FAST_RETRY, batch_size=batch_size)
    w = start_worker(kafka_bootstrap, db.server.url(), db.schema, app.registry, settings)
    try:
        wait_until(lambda: _committed(kafka_bootstrap, group, topic) == sent, 60, "the partition's end committed")
        assert w.thread.is_alive()
    finally:
        w.stop()

    applied = dict(rows(db.conninfo, "SELECT key, count(*) FROM effects GROUP BY key"))
    assert applied.get("before") == 1 and applied.get("after") == 1, applied
    dead = rows(
        db.conninfo,
        "SELECT id, reason, raw_key, raw_value, raw_headers, headers FROM kafka_listener_dead_letters"
        " WHERE reason <> 'handler_error' ORDER BY id",
    )
    if p.reason is None:
        assert dead == []
        assert applied.get((p.key or b"").decode()) == 1
        return
    assert len(dead) == 1, dead
    dl_id, reason, raw_key, raw_value, stored_headers, readable = dead[0]
    assert reason == p.reason
    assert bytes(raw_key) == p.key and bytes(raw_value) == p.value
    if p.kcat_headers:  # the client could not read them: no claim about their bytes
        assert stored_headers is None
    else:
        assert raw_headers.decode(bytes(stored_headers)) == p.headers
    assert isinstance(readable, dict)
    assert scalar(db.conninfo, "SELECT count(*) FROM kafkaguard_last_resort") == 0

    cli = [sys.executable, "-m", "kafkaguard", "dead-letters", "list", "--json"]
    listed = subprocess.run(
        [*cli, "--url", db.server.url(), "--schema", db.schema],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    assert dl_id in [r["id"] for r in json.loads(listed.stdout)]


@pytest.mark.parametrize("batch_size", [1, 50], ids=["per-event", "batch"])
def test_same_event_id_with_other_content_is_an_id_conflict(
    batch_size: int, kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    db = migrated_database
    app.create_tables(db.conninfo)
    topic = topics("conflict", partitions=1)
    first = good("conflict-key", 0)
    same_again = Event(
        type=first.type, key=first.key, payload={"seq": 0}, event_id=first.event_id, occurred_at=first.occurred_at
    )
    forged = Event(type=first.type, key=first.key, payload={"seq": 99}, event_id=first.event_id)
    after = good("after")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for e in (first, same_again, forged, after):
        k, v, h = as_message(e)
        producer.produce(topic, key=k, value=v, headers=h, partition=0)
    # The same event as PostgreSQL renders its payload (the relay's bytes): a duplicate, not a conflict.
    producer.produce(topic, key=b"conflict-key", value=b'{"seq": 0}', headers=first.kafka_headers(), partition=0)
    assert producer.flush(30) == 0

    group = app.new_group()
    w = start_worker(
        kafka_bootstrap,
        db.server.url(),
        db.schema,
        app.registry,
        ConsumerSettings(group_id=group, topics=(topic,), batch_size=batch_size),
    )
    try:
        wait_until(lambda: _committed(kafka_bootstrap, group, topic) == 5, 60, "the partition's end committed")
    finally:
        w.stop()
    assert w.worker.stats["applied"] == 2 and w.worker.stats["duplicate"] == 2
    assert w.worker.stats["id_conflict"] == 1
    assert rows(db.conninfo, "SELECT key, seq FROM effects ORDER BY id") == [("conflict-key", 0), ("after", 0)]
    conflict = rows(db.conninfo, 'SELECT reason, event_id, "offset", error_message FROM kafka_listener_dead_letters')
    assert len(conflict) == 1
    reason, event_id, offset, message = conflict[0]
    assert (reason, event_id, offset) == ("id_conflict", forged.event_id, 2)
    assert f"{topic}[0]@0" in message and f"{topic}[0]@2" in message  # both positions


def test_restore_sends_back_the_exact_header_bytes(
    kafka_bootstrap: str, topics: TopicFactory, migrated_database: TestDatabase
) -> None:
    """A parked event's headers (a NUL in a value, a repeated name) reach the handler byte for byte on
    restore; a header value that is not UTF-8 is not rewritten into a decodable one (it stays a dead letter)."""
    from sqlalchemy.orm import Session

    from kafkaguard.consumer import HandlerContext, HandlerRegistry, restore_key
    from kafkaguard.db.engine import sync_engine

    db = migrated_database
    topic = topics("headers", partitions=1)
    seen: list[dict[str, str]] = []
    broken = {"hk"}
    registry = HandlerRegistry()

    @registry.handler("test.headers")
    def record_headers(event: Event, ctx: HandlerContext[Session]) -> None:
        if event.key in broken:
            raise RuntimeError("broken for now")
        seen.append(dict(event.headers))

    def ev(key: str, **headers: str) -> Event:
        return Event(type="test.headers", key=key, payload={}, headers=headers)

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    head = ev("hk")
    parked = ev("hk", note="a\x00b", trace="t1")
    not_utf8 = [*ev("bad").kafka_headers(), ("note", b"\xff\xfe")]
    for k, v, h in (as_message(head), as_message(parked), (b"bad", b"{}", not_utf8)):
        producer.produce(topic, key=k, value=v, headers=h, partition=0)
    assert producer.flush(30) == 0
    group = app.new_group()
    settings = ConsumerSettings(group_id=group, topics=(topic,), retry=FAST_RETRY)
    w = start_worker(kafka_bootstrap, db.server.url(), db.schema, registry, settings)
    try:
        wait_until(lambda: _committed(kafka_bootstrap, group, topic) == 3, 60, "the partition's end committed")
    finally:
        w.stop()
    engine = sync_engine(db.server.url(), schema=db.schema)
    try:
        broken.clear()
        result = restore_key(engine, registry, group, "hk")
        assert len(result.restored) == 2 and result.failed_id is None
        assert seen == [{}, {"note": "a\x00b", "trace": "t1"}]
        (bad_id,) = [r for (r,) in rows(db.conninfo, "SELECT id FROM kafka_listener_dead_letters WHERE key = 'bad'")]
        from kafkaguard.consumer import retry_dead_letter

        again = retry_dead_letter(engine, registry, bad_id)
        assert again.failed_id == bad_id and again.restored == []
        (raw,) = rows(db.conninfo, "SELECT raw_headers FROM kafka_listener_dead_letters WHERE id = %s", (bad_id,))[0]
        assert ("note", b"\xff\xfe") in raw_headers.decode(bytes(raw))
    finally:
        engine.dispose()


def test_a_refused_dead_letter_lands_in_the_last_resort_store(migrated_database: TestDatabase) -> None:
    """When the database refuses the normal dead-letter row for its data (here: a constraint the test adds
    so that the refusal is certain), the record is kept byte for byte in kafkaguard_last_resort."""
    from kafkaguard.consumer import Applier
    from kafkaguard.consumer.decisions import Outcome
    from kafkaguard.consumer.records import Record
    from kafkaguard.db.engine import sync_engine

    db = migrated_database
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE kafka_listener_dead_letters ADD CONSTRAINT no_x CHECK (reason <> 'undecodable')")
    engine = sync_engine(db.server.url(), schema=db.schema)
    try:
        applier = Applier(engine, app.registry, ConsumerSettings(group_id="g-" + uuid.uuid4().hex[:6]))
        hdrs = [*good("k").kafka_headers(), ("x", b"\xff")]
        record = Record("t", 0, 7, b"k\xff", b"not json", hdrs)
        assert applier.process(record) is Outcome.DEAD_LETTERED
        kept = rows(
            db.conninfo,
            'SELECT store, topic, "offset", raw_key, raw_value, raw_headers, error FROM kafkaguard_last_resort',
        )
    finally:
        engine.dispose()
    assert len(kept) == 1
    store, topic, offset, raw_key, raw_value, stored_headers, error = kept[0]
    assert (store, topic, offset, bytes(raw_key), bytes(raw_value)) == ("listener", "t", 7, b"k\xff", b"not json")
    assert raw_headers.decode(bytes(stored_headers)) == record.headers
    assert "no_x" in error and "undecodable" in error and error.isascii()
    assert json.dumps(error)  # plain text
