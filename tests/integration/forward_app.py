"""A transform for the transactional forwarder test: every ``test.applied`` input becomes one output."""

from __future__ import annotations

import os

from kafkaguard.envelope import Event


def transform(event: Event) -> list[tuple[str, Event]]:
    out = Event(
        type="test.forwarded",
        key=event.key,
        payload={"source": str(event.event_id), "seq": event.payload["seq"]},
    )
    return [(os.environ["FORWARD_OUTPUT_TOPIC"], out)]
