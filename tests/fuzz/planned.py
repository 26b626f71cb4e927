"""Turn a generated plan into concrete messages: fresh keys and event ids for the good events."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from kafkaguard.envelope import kafka_headers
from tests.fuzz.app import TYPE
from tests.fuzz.durable import ANY, APPLIED, CONFLICT, DUPLICATE
from tests.fuzz.strategies import Conflict, Good, Message, PlanItem, Poison, Redeliver


@dataclass(frozen=True)
class Planned:
    """One message to send, what the test expects of it, and the good event id it stands for."""

    message: Message
    expect: str
    event_id: uuid.UUID | None = None


def good_message(item: Good) -> Planned:
    """``item`` as a valid event of a fresh key, with a fresh event id: it must be applied."""
    event_id = uuid.uuid4()
    headers = kafka_headers(str(event_id), TYPE, "fuzz", datetime.now(UTC), 1) + list(item.extra_headers)
    key = f"good-{uuid.uuid4().hex}".encode()
    return Planned(Message(key, item.value(), tuple(headers)), APPLIED, event_id)


def realise(plan: list[PlanItem], *, final_good: bool = True) -> list[Planned]:
    """The plan's messages in order; redeliveries and conflicts refer to earlier good events
    (skipped when there is none yet); ``final_good`` appends one more good event."""
    goods: list[Planned] = []
    out: list[Planned] = []
    for item in plan:
        if isinstance(item, Poison):
            out.append(Planned(item.message, ANY))
        elif isinstance(item, Good):
            good = good_message(item)
            goods.append(good)
            out.append(good)
        elif goods:
            original = goods[item.index % len(goods)]
            if isinstance(item, Redeliver):
                out.append(Planned(original.message, DUPLICATE, original.event_id))
            elif isinstance(item, Conflict):
                other = json.dumps({"conflicting": uuid.uuid4().hex}).encode()
                msg = Message(original.message.key, other, original.message.headers)
                out.append(Planned(msg, CONFLICT, original.event_id))
    if final_good:
        out.append(good_message(Good({"last": True})))
    return out
