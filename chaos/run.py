"""One chaos run: one scenario for one publish mode, on its own schemas, topic and consumer group.

Lifecycle (driven by :func:`chaos.runner.run_one`): ``setup`` → ``start`` (consumer or
http endpoint, relay for outbox, the writer) → the scenario injects its fault and heals it →
``wait_writer`` → :func:`~chaos.recovery.recover` (restore jobs until every committed
write is applied or nothing moves) → ``measure`` (the invariants, from both databases) → ``teardown``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from chaos.database import ChaosDatabase, as_uuid
from chaos.invariants import Applied, Committed, Verdict, verdict
from chaos.profiles import Profile
from chaos.recovery import RESTORE_POLICY, lag
from chaos.security import client_security
from chaos.stack import ChaosStack
from kafkaguard.db import columns as C
from kafkaguard.db import migrate
from kafkaguard.devstack.kafka import KafkaCluster
from kafkaguard.devstack.process import free_ports, poll
from kafkaguard.devstack.services import ServiceProcess as Proc
from kafkaguard.devstack.services import python
from kafkaguard.publisher.settings import PublishMode
from kafkaguard.transports.kafka_admin import ensure_topics

log = logging.getLogger("kafkaguard.chaos")

# The checkout holding this package: every process a run starts imports ``chaos.*`` (the writer, the
# consumer's registry, the http endpoint) whatever its working directory.
CHECKOUT = Path(__file__).resolve().parent.parent


def _rows(table: str, condition: str = "TRUE") -> str:
    """``SELECT count(*)`` of a kafkaguard table (named in ``db/columns``) under a constant condition."""
    return f"SELECT count(*) FROM {table} WHERE {condition}"  # noqa: S608 - constant table and condition


@dataclass
class ScenarioOutcome:
    """What a run measured: the invariants plus context for the report."""

    verdict: Verdict
    recover_seconds: float | None
    attempts: int
    rolled_back: int
    publisher_dead_letters: int
    listener_dead_letters: int
    notes: list[str] = field(default_factory=list)
    phantom_on_purpose: int = 0  # phantoms whose transaction the workload rolled back on purpose


class RunContext:
    """Everything one run owns. Scenarios act through it: ``kafka``, ``db_publisher``, ``procs``.

    The run's namespaces (``pub_schema``, ``con_schema``) are schemas on PostgreSQL and databases on
    MariaDB; kafkaguard's ``KAFKAGUARD_DB_SCHEMA`` names either."""

    def __init__(
        self,
        stack: ChaosStack,
        mode: PublishMode,
        profile: Profile,
        seed: int,
        brokers: int,
        logs: Path,
        *,
        proxied: bool = False,
    ):
        self.stack, self.mode, self.profile, self.seed, self.brokers = stack, mode, profile, seed, brokers
        self.run_id = uuid.uuid4().hex[:8]
        self.aggregate = f"chaos{self.run_id}"
        self.topic = f"outbox.event.{self.aggregate}"
        self.group = f"kafkaguard-chaos-{self.run_id}"  # the secured stack's ACLs allow groups kafkaguard*
        self.pub_schema, self.con_schema = f"cp_{self.run_id}", f"cc_{self.run_id}"
        # http mode: the writer signs with it, the endpoint accepts only it (a fresh one per run).
        self.http_secret = secrets.token_hex(32)
        self.logs = logs
        self.kafka: KafkaCluster = stack.kafka(brokers, proxied=proxied)
        self.bootstrap = stack.bootstrap(self.kafka)
        assert stack.db_publisher is not None and stack.db_consumer is not None
        self.db_publisher: ChaosDatabase = stack.db_publisher
        self.db_consumer: ChaosDatabase = stack.db_consumer
        self.procs: dict[str, Proc] = {}
        self.extra_consumers: list[Proc] = []
        self.healed_at: float | None = None
        self.notes: list[str] = []
        self._progress = 0

    # -- setup ------------------------------------------------------------------------------------
    @property
    def topics(self) -> list[str]:
        """Topics the consumer reads (background also reads its DLQ topic, as an operator's replay)."""
        return [self.topic, f"{self.topic}.dlq"] if self.mode is PublishMode.BACKGROUND else [self.topic]

    def setup(self) -> None:
        """Schemas with kafkaguard's migrations and the chaos tables; the run's topics."""
        for db, schema, ddl in (
            (self.db_publisher, self.pub_schema, self.db_publisher.producer_ddl),
            (self.db_consumer, self.con_schema, self.db_consumer.consumer_ddl),
        ):
            db.create(schema)
            migrate.upgrade(db.url(), schema=schema)
            db.run_ddl(schema, ddl)
        if self.mode is not PublishMode.HTTP:
            ensure_topics(
                self.bootstrap, self.topics, partitions=3, replication=self.brokers, overrides=client_security()
            )

    def _env(self, db: ChaosDatabase, schema: str) -> dict[str, str]:
        inherited = os.environ.get("PYTHONPATH")
        return {
            "PYTHONPATH": os.pathsep.join([str(CHECKOUT), *([inherited] if inherited else [])]),
            "KAFKAGUARD_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKAGUARD_DATABASE_URL": db.url(),
            "KAFKAGUARD_DB_SCHEMA": schema,
            "KAFKAGUARD_TOPICS__REPLICATION": str(self.brokers),
            "KAFKAGUARD_CONSUMER__GROUP_ID": self.group,
            "KAFKAGUARD_CONSUMER__STORE_BACKOFF_MAX": "2",
            # A SIGKILLed member holds its partitions until its session expires (45 s by default);
            # the broker's minimum (6 s) keeps the kill scenarios short without changing what they test.
            "KAFKAGUARD_CONSUMER_CLIENT": '{"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}',
            "KAFKAGUARD_RELAY__MAX_BACKOFF": "2",
            "KAFKAGUARD_RELAY__DELIVERY_TIMEOUT": "10",
            "KAFKAGUARD_PUBLISH__DEFAULT_MODE": self.mode.value,
            "KAFKAGUARD_PUBLISH__DIRECT_TIMEOUT": "3",
            "KAFKAGUARD_PUBLISH__BACKGROUND_TIMEOUT": "2",
            "KAFKAGUARD_PUBLISH__BACKGROUND_RETRY": '{"max_attempts": 3, "backoff": {"kind": "fixed", "seconds": 0.5}}',
            "KAFKAGUARD_PUBLISH__HTTP_TIMEOUT": "3",
            "KAFKAGUARD_PUBLISH__HTTP_SECRETS": json.dumps([self.http_secret]),
            "KAFKAGUARD_CONSUMER__HTTP_SECRETS": json.dumps([self.http_secret]),
            # secured suite: the publishing side as the relay's principal, the consuming side as the consumer's
            **self.stack.security_env("relay" if db is self.db_publisher else "consumer"),
        }

    def consumer_proc(self, name: str = "consumer") -> Proc:
        """A Kafka consumer process of the run's group (not started)."""
        topics = [a for t in self.topics for a in ("--topic", t)]
        argv = python("-m", "kafkaguard", "consume", "chaos.projection:registry", "--group", self.group,
                      *topics)  # fmt: skip
        return Proc(name, argv, self._env(self.db_consumer, self.con_schema), self.logs / f"{name}.log")

    def start(self) -> None:
        """Start the consuming side, the relay (outbox) and the writer."""
        pub_env = self._env(self.db_publisher, self.pub_schema)
        if self.mode is PublishMode.HTTP:
            port = free_ports(1)[0]
            argv = python("-m", "uvicorn", "--factory", "chaos.projection:create_app", "--host",
                          "127.0.0.1", "--port", str(port), "--log-level", "warning")  # fmt: skip
            self.procs["endpoint"] = Proc("endpoint", argv, self._env(self.db_consumer, self.con_schema),
                                          self.logs / "endpoint.log", f"http://127.0.0.1:{port}/health")  # fmt: skip
            pub_env["KAFKAGUARD_PUBLISH__HTTP_DEFAULT_ENDPOINT"] = f"http://127.0.0.1:{port}/kafkaguard/events"
        else:
            self.procs["consumer"] = self.consumer_proc()
        if self.mode is PublishMode.OUTBOX:
            self.procs["relay"] = Proc("relay", python("-m", "kafkaguard", "relay"), pub_env, self.logs / "relay.log")
        p = self.profile
        argv = python("-m", "chaos.writer", "--seed", str(self.seed), "--events", str(p.events),
                      "--rate", str(p.rate), "--keys", str(p.keys), "--aggregate", self.aggregate)  # fmt: skip
        self.procs["writer"] = Proc("writer", argv, pub_env, self.logs / "writer.log")
        for proc in self.procs.values():
            proc.start()

    # -- during the run ---------------------------------------------------------------------------
    def progress(self) -> int:
        """Writes attempted so far (the last known count while the publisher's database is down)."""
        with contextlib.suppress(*self.db_publisher.errors):  # the database is down: keep the last count
            self._progress = self.db_publisher.count(self.pub_schema, "SELECT count(*) FROM chaos_attempts", timeout=2)
        return self._progress

    def wait_progress(self, fraction: float, timeout: float = 300.0) -> None:
        """Wait until ``fraction`` of the planned writes were attempted (or the writer exited)."""
        target = int(self.profile.events * fraction)
        poll(lambda: self.progress() >= target or not self.procs["writer"].alive(), timeout)
        log.info("run %s: %d of %d writes attempted", self.run_id, self._progress, self.profile.events)

    def fault(self, seconds: float) -> None:
        """Let a fault last ``seconds`` (a fault's own duration: the one timed wait allowed)."""
        log.info("run %s: fault lasts %.1f s", self.run_id, seconds)
        time.sleep(seconds)

    def mark_healed(self) -> None:
        """The fault is over: recovery time is measured from here."""
        self.healed_at = time.monotonic()

    def wait_writer(self) -> None:
        """Wait for the writer to finish its plan; restart it if it died (a scenario may have killed it)."""
        writer = self.procs["writer"]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if poll(lambda: not writer.alive(), 5):
                if self.progress() >= self.profile.events:
                    return
                self.notes.append("writer restarted to finish its plan")
                writer.start()
        raise TimeoutError("the chaos writer did not finish its plan in 600 s")

    def restore_proc(self) -> Proc:
        """``kafkaguard restore publisher --once`` for this run's publisher database (not started)."""
        env = {**self._env(self.db_publisher, self.pub_schema), "KAFKAGUARD_RESTORE__POLICY":
               RESTORE_POLICY.model_dump_json()}  # fmt: skip
        argv = python("-m", "kafkaguard", "restore", "publisher", "--once")
        return Proc("restore", argv, env, self.logs / "restore.log")

    def restored(self) -> int:
        """Publisher dead letters marked restored so far."""
        return self._pub(_rows(C.PUBLISHER_DEAD_LETTERS, "status = 'restored'"))

    def _pub(self, sql: str) -> int:
        return self.db_publisher.count(self.pub_schema, sql)

    def _con(self, sql: str) -> int:
        return self.db_consumer.count(self.con_schema, sql)

    # -- after the run ----------------------------------------------------------------------------
    def committed(self) -> list[Committed]:
        """Committed business writes of the publisher database."""
        rows = self.db_publisher.rows(self.pub_schema, "SELECT event_id, akey, seq FROM chaos_writes")
        return [Committed(as_uuid(e), k, int(s)) for e, k, s in rows]

    def applied(self) -> list[Applied]:
        """Rows of the consumer's projection."""
        sql = "SELECT event_id, akey, seq, apply_count, applied_order FROM chaos_projection"
        rows = self.db_consumer.rows(self.con_schema, sql)
        return [Applied(as_uuid(e), k, int(s), int(n), int(o)) for e, k, s, n, o in rows]

    def pending_work(self) -> int:
        """Outbox rows, open dead letters not yet given up on and consumer lag (work the system owes)."""
        outbox = self._pub(_rows(C.OUTBOX))
        pub = self._pub(_rows(C.PUBLISHER_DEAD_LETTERS, "status = 'pending'"))
        ours = f"status = 'pending' AND {self.db_consumer.quote('key')} LIKE 'k%'"
        con = self._con(_rows(C.LISTENER_DEAD_LETTERS, ours))
        return outbox + pub + con + lag(self)

    def measure(self, recover_seconds: float | None) -> ScenarioOutcome:
        """The invariants and the context counts of this run."""
        applied = self.applied()
        result = verdict(self.committed(), applied)
        rows = self.db_publisher.rows(self.pub_schema, "SELECT event_id FROM chaos_attempts WHERE rollback")
        rolled_back = {as_uuid(r[0]) for r in rows}
        return ScenarioOutcome(
            verdict=result,
            recover_seconds=recover_seconds,
            attempts=self._pub("SELECT count(*) FROM chaos_attempts"),
            rolled_back=len(rolled_back),
            publisher_dead_letters=self._pub(_rows(C.PUBLISHER_DEAD_LETTERS)),
            listener_dead_letters=self._con(_rows(C.LISTENER_DEAD_LETTERS)),
            notes=list(self.notes),
            phantom_on_purpose=sum(1 for a in applied if a.event_id in rolled_back),
        )

    def teardown(self, *, keep: bool) -> None:
        """Stop every process of the run; drop its schemas unless ``keep`` (for reading after a failure)."""
        for proc in [*self.procs.values(), *self.extra_consumers]:
            proc.kill()
        if keep:
            return
        for db, schema in ((self.db_publisher, self.pub_schema), (self.db_consumer, self.con_schema)):
            db.drop(schema)
