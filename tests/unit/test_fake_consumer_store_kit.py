"""What a user's handler test looks like with ``kafkaguard.testing``: Worker.from_settings over a
MemorySource and a MemoryConsumerStore whose sessions are SQLAlchemy sessions on in-memory SQLite."""

from __future__ import annotations

import threading
import time
from typing import Any

from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, insert, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from kafkaguard import KafkaguardSettings
from kafkaguard.consumer import HandlerRegistry, Worker
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.envelope import Event
from kafkaguard.testing import MemoryConsumerStore, MemorySource
from tests.unit.consumer_fakes import record

metadata = MetaData()
signups = Table("signups", metadata, Column("id", Integer, primary_key=True), Column("email", String, unique=True))


def test_handler_writes_commit_with_the_inbox_and_a_failure_leaves_none() -> None:
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    metadata.create_all(engine)
    store = MemoryConsumerStore(lambda: Session(engine))
    registry = HandlerRegistry()

    @registry.handler("user.signed_up")
    def signed_up(event: Event, ctx: Any) -> None:
        ctx.session.execute(insert(signups).values(email=event.payload["email"]))
        if event.payload["email"].endswith("@bad.example"):
            raise ValueError("refused domain")  # permanent: dead-lettered, the insert rolled back

    events = [Event(type="user.signed_up", key=f"u{n}", payload={"email": e}) for n, e in
              enumerate(["a@x.example", "b@bad.example", "c@x.example"])]  # fmt: skip
    source = MemorySource([record(e, n) for n, e in enumerate([*events, events[0]])])  # a redelivery too
    settings = KafkaguardSettings(consumer=ConsumerSettings(group_id="signups"))
    worker = Worker.from_settings(settings, registry, source=source, store=store)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while source.committed.get(("t", 0)) != 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    thread.join(5)

    with Session(engine) as s:
        assert sorted(s.scalars(select(signups.c.email))) == ["a@x.example", "c@x.example"]
    assert worker.stats == {"applied": 2, "dead_lettered": 1, "duplicate": 1}
    (dead,) = store.dead_letters_of("signups")
    assert (dead["key"], dead["error_class"], dead["status"]) == ("u1", "ValueError", "pending")
