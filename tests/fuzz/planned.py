"""Turn a generated plan into concrete messages: fresh keys and event ids for the good events."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from kafkaguard.envelope import kafka_headers
from tests.fuzz.app import TYPE
from tests.fuzz.durable import ANY, APPLIED, CONFLICT, DUPLICATE
from tests.fuzz.strategies import Conflict, Good, Headers, Message, PlanItem, Poison, Redeliver


@dataclass(frozen=True)
class Planned:
    """One message to send, what the test expects of it, and the good event id it stands for."""

    message: Message
    expect: str
    event_id: uuid.UUID | None = None
    of: int | None = None  # a redelivery or conflict: the index of the original in the same list

    def __post_init__(self) -> None:
        assert self.of is None or self.expect in (DUPLICATE, CONFLICT)


def good_message(item: Good) -> Planned:
    """``item`` as a valid event of a fresh key, with a fresh event id: it must be applied."""
    event_id = uuid.uuid4()
    headers = kafka_headers(str(event_id), TYPE, "fuzz", datetime.now(UTC), 1) + list(item.extra_headers)
    key = f"good-{uuid.uuid4().hex}".encode()
    return Planned(Message(key, item.value(), tuple(headers)), APPLIED, event_id)


def realise(plan: list[PlanItem], *, final_good: bool = True) -> list[Planned]:
    """The plan's messages in order; redeliveries and conflicts refer to earlier good events
    (skipped when there is none yet) and must travel on their original's partition, since order
    holds only within a partition; ``final_good`` appends one more good event."""
    goods: list[int] = []  # indexes in ``out`` of the good events
    out: list[Planned] = []
    for item in plan:
        if isinstance(item, Poison):
            out.append(Planned(item.message, ANY))
        elif isinstance(item, Good):
            goods.append(len(out))
            out.append(good_message(item))
        elif goods:
            at = goods[item.index % len(goods)]
            original = out[at]
            if isinstance(item, Redeliver):
                out.append(Planned(original.message, DUPLICATE, original.event_id, of=at))
            elif isinstance(item, Conflict):
                other = json.dumps({"conflicting": uuid.uuid4().hex}).encode()
                msg = Message(original.message.key, other, original.message.headers)
                out.append(Planned(msg, CONFLICT, original.event_id, of=at))
    if final_good:
        out.append(good_message(Good({"last": True})))
    return out


def _envelope(n: int, type_: bytes = TYPE.encode(), *extra: tuple[str, bytes | None]) -> Headers:
    event_id = str(uuid.UUID(int=1300 + n)).encode()  # distinct per message: none is another's duplicate
    return (("event_id", event_id), ("type", type_), ("occurred_at", b"2024-02-29T12:00:00+00:00"), *extra)


ISSUE_13_MESSAGES = (
    # The consumer inputs of issue 13; the tests try each of them first on every run.
    Message(b"deep", b'{"a":' + b"[" * 2000 + b"]" * 2000 + b"}", _envelope(1)),  # json.loads recursed
    Message(b"k" * 300, b"{}", _envelope(2)),  # over varchar(255)
    Message(b"long-type", b"{}", _envelope(3, b"t" * 300)),
    Message(b"a\x00b", b"{}", _envelope(4)),  # NUL in the key
    Message(b"nul-type", b"{}", _envelope(5, b"fuzz.applied\x00")),  # NUL in the type header
    Message(b"nul-header", b"{}", _envelope(6, b"fuzz.unknown", ("x-trace", b"a\x00b"))),  # dead letter, NUL header
    Message(b"bad-name", b"{}", _envelope(7, TYPE.encode(), ("\udcff\udcfe", b"x"))),  # header name not UTF-8
)
