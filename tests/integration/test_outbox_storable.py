"""Any payload an application hands to the outbox is either stored or refused at once with EnvelopeError —
never a database error at commit (hypothesis against the real PostgreSQL)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from kafkaguard import add_event
from kafkaguard.db.engine import sync_engine
from kafkaguard.db.tables import outbox
from kafkaguard.envelope import EnvelopeError, Event
from kafkaguard.testing.fixtures import TestDatabase

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
payloads = st.dictionaries(
    st.text(max_size=10),
    st.recursive(json_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4)),
    max_size=5,
)


@pytest.fixture
def engine(migrated_database: TestDatabase) -> Any:
    eng = sync_engine(migrated_database.server.url(), schema=migrated_database.schema, pool_size=1)
    yield eng
    eng.dispose()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payloads, st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=3))
def test_a_payload_is_stored_or_refused_up_front(
    engine: Engine, payload: dict[str, Any], headers: dict[str, str]
) -> None:
    event = Event(type="fuzz.stored", key=f"k-{uuid.uuid4().hex[:6]}", payload=payload, headers=headers)
    with Session(engine) as s, s.begin():
        try:
            add_event(s, event)
        except EnvelopeError:
            return  # refused before anything reached the database
    with Session(engine) as s:
        assert s.execute(select(func.count()).where(outbox.c.id == event.event_id)).scalar() == 1


def test_nul_and_deep_payloads_are_refused_with_a_clear_error(engine: Engine) -> None:
    deep: list[Any] = []
    level = deep
    for _ in range(150):
        level.append([])
        level = level[0]
    for payload, words in (({"a": "x\x00y"}, "NUL"), ({"a": "\ud800"}, "surrogate"), ({"d": deep}, "deeper")):
        with Session(engine) as s, s.begin(), pytest.raises(EnvelopeError, match=words):
            add_event(s, Event(type="fuzz.bad", key="k", payload=payload))
