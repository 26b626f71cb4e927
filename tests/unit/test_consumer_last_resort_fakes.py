"""The last-resort path over the in-memory store: a dead letter the store refuses for its data
(as PostgreSQL refuses a value a column cannot hold) lands in the last-resort rows with its exact
bytes, and the worker moves on (offsets committed past it, later records applied)."""

from __future__ import annotations

import threading
import time
from typing import Any

from kafkaguard import KafkaguardSettings
from kafkaguard.consumer import HandlerRegistry, Worker
from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.envelope import Event
from kafkaguard.testing import MemoryConsumerStore, MemorySource
from tests.unit.consumer_fakes import record


def test_a_refused_dead_letter_lands_in_last_resort_and_the_worker_moves_on() -> None:
    store = MemoryConsumerStore()
    store.refuse_dead_letter = lambda row: row["key"] == "poison"
    registry = HandlerRegistry()
    applied: list[str] = []

    @registry.handler("t.made")
    def made(event: Event, ctx: Any) -> None:
        if event.payload["fail"]:
            raise ValueError("permanent")  # dead-lettered at once
        applied.append(f"{event.key}/{event.payload['n']}")

    events = [
        Event(type="t.made", key="poison", payload={"n": 0, "fail": True}),  # refused: last resort
        Event(type="t.made", key="other", payload={"n": 1, "fail": True}),  # a normal dead letter
        Event(type="t.made", key="fine", payload={"n": 2, "fail": False}),
    ]
    records = [record(e, n) for n, e in enumerate(events)]
    source = MemorySource(records)
    settings = KafkaguardSettings(consumer=ConsumerSettings(group_id="g"))
    worker = Worker.from_settings(settings, registry, source=source, store=store)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 5
    while source.committed.get(("t", 0)) != len(records) and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()
    thread.join(5)

    assert source.committed.get(("t", 0)) == len(records)  # moved past the refused record
    assert applied == ["fine/2"]
    (last,) = store.last_resort_rows
    assert (last["store"], last["consumer_group"], last["offset"]) == ("listener", "g", 0)
    assert (last["raw_key"], last["raw_value"]) == (records[0].key, records[0].value)  # exact bytes
    assert "normal dead letter refused" in last["error"] and "MemoryRowRefused" in last["error"]
    assert [r["key"] for r in store.dead_letters_of("g")] == ["other"]  # nothing stored for the refused one
    assert worker.stats == {"applied": 1, "dead_lettered": 2}
