"""The writing service of a chaos run, as its own process (so a scenario can SIGKILL it).

``python -m chaos.writer --seed S --events N --rate R --aggregate A``; the publish mode,
Kafka, the database and the http endpoint come from ``KAFKAGUARD_*`` environment variables.

For each planned step, in order: record the attempt (autocommit; retried while the database is down),
then in one transaction insert the business row and ``Publisher.publish`` the event; roll back on
purpose when the plan says so. A failed transaction (database down, PublishUnavailableError) is
logged and the writer moves on: whether it committed is read from ``chaos_writes`` afterwards.
A restarted writer resumes after the last recorded attempt. Exits 0 once the plan is done.
"""

from __future__ import annotations

import argparse
import logging
import time
import uuid

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from chaos.database import RECORD_ATTEMPT, dialect_of
from chaos.projection import EVENT_TYPE
from chaos.workload import Step, plan
from kafkaguard.db.engine import sync_engine
from kafkaguard.envelope import Event
from kafkaguard.errors import KafkaguardError
from kafkaguard.publisher.facade import Publisher
from kafkaguard.settings import KafkaguardSettings

log = logging.getLogger("kafkaguard.chaos.writer")


class _Rollback(Exception):
    """Raised inside the transaction to roll it back on purpose."""


def _retry_db(engine: Engine, sql: str, params: dict[str, object], *, give_up_after: float = 300.0) -> object:
    """Run ``sql`` in autocommit, retrying while the database is down (up to ``give_up_after`` s)."""
    deadline = time.monotonic() + give_up_after
    delay = 0.1
    while True:
        try:
            with engine.begin() as conn:
                result = conn.execute(text(sql), params)
                return result.scalar() if result.returns_rows else None
        except SQLAlchemyError:
            if time.monotonic() > deadline:
                raise
            time.sleep(delay)  # waiting out a database outage, not synchronising with anything
            delay = min(1.0, delay * 2)


def write_one(engine: Engine, publisher: Publisher, step: Step, aggregate: str) -> str:
    """One planned write; returns ``committed``, ``rolled_back`` or ``failed``."""
    event = Event(type=EVENT_TYPE, key=step.key, aggregate_type=aggregate, payload={"seq": step.seq, "i": step.i})
    _retry_db(
        engine,
        RECORD_ATTEMPT[dialect_of(engine.dialect.name)],
        {"i": step.i, "key": step.key, "seq": step.seq, "eid": str(event.event_id), "rb": step.rollback},
    )
    try:
        with Session(engine) as session, session.begin():
            session.execute(
                text("INSERT INTO chaos_writes VALUES (:i, :key, :seq, :eid)"),
                {"i": step.i, "key": step.key, "seq": step.seq, "eid": str(event.event_id)},
            )
            publisher.publish(session, event)
            if step.rollback:
                raise _Rollback
    except _Rollback:
        return "rolled_back"
    except (SQLAlchemyError, KafkaguardError) as exc:
        log.warning("write %d (key %s seq %d) failed: %s", step.i, step.key, step.seq, type(exc).__name__)
        return "failed"
    return "committed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0, help="writes per second (at most)")
    parser.add_argument("--aggregate", required=True, help="aggregate type (routes to the run's topic)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = KafkaguardSettings()
    engine = sync_engine(settings.database_url, schema=settings.db_schema)
    publisher = Publisher(settings, engine=engine)
    done = _retry_db(engine, "SELECT coalesce(max(i), -1) FROM chaos_attempts", {})
    steps = plan(args.seed, args.events, keys=args.keys)[int(str(done)) + 1 :]
    log.info("writer %s: %d steps to go (mode %s)", uuid.uuid4().hex[:6], len(steps), settings.publish.default_mode)
    started = time.monotonic()
    for n, step in enumerate(steps):
        ahead = started + n / args.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)  # rate limit of the workload, not synchronisation
        write_one(engine, publisher, step, args.aggregate)
    publisher.close()
    engine.dispose()
    log.info("writer done")


if __name__ == "__main__":
    main()
