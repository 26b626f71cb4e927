"""The whole path over a secured cluster: publish → relay → consume → dead letter → restore.

On the secured dev stack (:func:`kafkaguard.testing.stacks.secure_stack`), with PostgreSQL over TLS
(``sslmode=verify-full``), once over SASL_SSL/SCRAM-SHA-512 and once over mTLS, each component as
its own principal through the ``kafka_security`` settings block only:

- the relay (principal ``relay``) publishes the outbox, creating its topic; a row for a topic its
  ACLs deny becomes a publisher dead letter with reason ``topic_authorization_failed``, the later
  row of that key is held, and the other keys flow;
- the consumer (principal ``consumer``) applies every event once; a broken key's event becomes a
  listener dead letter, restored after the key is repaired;
- the publisher restore job as ``operator`` republishes the refused row;
- no secret (SCRAM passwords, the database password, a private key) is in any log line of the run,
  in the stack's log files or in any dead-letter row.

And a consumer whose principal may not read its topic exits non-zero with one line, committing nothing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from kafkaguard import (
    Event,
    KafkaguardSettings,
    ListenerRestoreJob,
    Publisher,
    PublisherRestoreJob,
    PublishOutcome,
    Relay,
    Worker,
)
from kafkaguard.db import migrate
from kafkaguard.devstack.secure import DENIED_TOPIC, UNREADABLE_TOPIC
from kafkaguard.devstack.stack import DevStack
from kafkaguard.testing import stacks
from tests.integration import consumer_app
from tests.integration.consumer_helpers import REPO, rows, scalar, wait_until


@pytest.fixture(scope="module")
def secure() -> Iterator[DevStack]:
    with stacks.secure_stack() as stack:
        yield stack


def _security(stack: DevStack, principal: str, mechanism: str) -> tuple[str, dict[str, Any]]:
    """(bootstrap servers, the kafka_security block) of ``principal``, as `dev env --secure` exports them."""
    info = stack.status()
    who = info["principals"][principal]
    if mechanism == "scram":
        block = {"protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "username": who["username"],
                 "password_file": who["password_file"], "ca_location": info["ca_file"]}  # fmt: skip
        return info["sasl_ssl_bootstrap_servers"], block
    block = {"protocol": "SSL", "ca_location": info["ca_file"], "certificate_location": who["certificate_file"],
             "key_location": who["key_file"]}  # fmt: skip
    return info["ssl_bootstrap_servers"], block


def _secrets(stack: DevStack) -> list[str]:
    info = stack.status()
    assert stack.kafka.secure is not None
    values = [stack.kafka.secure.password(p) for p in info["principals"]]
    values.append(stack.postgres.password_file.read_text().strip())
    for who in info["principals"].values():  # the body of each private key (its base64 lines)
        values += [line for line in Path(who["key_file"]).read_text().splitlines() if not line.startswith("-----")]
    assert all(len(v) >= 16 for v in values)
    return values


class Running:
    def __init__(self, target: Any, *args: Any, stop: Any) -> None:
        self.stop = stop
        self.thread = threading.Thread(target=target, args=args, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop()
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("mechanism", ["scram", "mtls"])
def test_the_whole_path_over_a_secured_cluster(
    secure: DevStack, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    schema = f"s_{uuid.uuid4().hex[:10]}"
    url = secure.postgres.url()
    assert "sslmode=verify-full" in url
    conninfo = f"{secure.postgres.conninfo()} options=-csearch_path={schema}"
    with psycopg.connect(secure.postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    migrate.upgrade(url, schema=schema)
    consumer_app.create_tables(conninfo)

    aggregate = f"sec{uuid.uuid4().hex[:8]}"
    topic = f"outbox.event.{aggregate}"
    group = f"kafkaguard-sec-{uuid.uuid4().hex[:8]}"

    def settings(principal: str) -> KafkaguardSettings:
        bootstrap, block = _security(secure, principal, mechanism)
        return KafkaguardSettings(
            bootstrap_servers=bootstrap, database_url=url, db_schema=schema, kafka_security=block,
            relay={"poll_interval": 0.5, "delivery_timeout": 10},
            consumer={"group_id": group, "topics": [topic], "batch_size": 1},
            restore={"policy": {"max_attempts": 5, "backoff": {"kind": "fixed", "seconds": 0}}},
        )  # fmt: skip

    good = [
        Event(type=e.type, key=e.key, payload=e.payload, aggregate_type=aggregate)
        for e in consumer_app.make_events(6, 3)  # keys k0..k2
    ]
    broken = Event(type="test.applied", key="broken", payload={"seq": 0}, aggregate_type=aggregate)
    # outbox.event.forbidden: the relay's principal is denied writing it
    denied = [Event(type="test.applied", key="kd", payload={"seq": s}, aggregate_type="forbidden") for s in (0, 1)]
    publisher = Publisher.from_settings(settings("relay"))
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO broken_keys VALUES ('broken')")
    try:
        with Session(engine) as session, session.begin():
            events = [*good[:3], denied[0], broken, denied[1], *good[3:]]
            outcomes = {publisher.publish(session, e) for e in events}
        assert outcomes == {PublishOutcome.OUTBOX}
    finally:
        publisher.close()
        engine.dispose()

    relay, relay_stop = Relay.from_settings(settings("relay"), name=f"secure-{mechanism}"), threading.Event()
    worker = Worker.from_settings(settings("consumer"), consumer_app.registry)
    running = [Running(relay.run, relay_stop, stop=relay_stop.set), Running(worker.run, stop=worker.stop)]
    try:
        wait_until(
            lambda: (
                scalar(conninfo, "SELECT count(*) FROM effects") == len(good)
                and scalar(conninfo, "SELECT count(*) FROM kafka_listener_dead_letters") == 1
                and scalar(conninfo, "SELECT count(*) FROM kafka_publisher_dead_letters") == 1
            ),
            90,
            "the good events applied, one listener and one publisher dead letter",
        )
        sql = "SELECT last_error_message, topic, key FROM kafka_publisher_dead_letters"
        ((message, dl_topic, key),) = rows(conninfo, sql)
        assert message.startswith("topic_authorization_failed:") and (dl_topic, key) == (DENIED_TOPIC, "kd"), message
        held = scalar(conninfo, "SELECT count(*) FROM outbox WHERE aggregateid = 'kd'")
        assert held == 1  # the later row of the refused key waits behind its dead letter
        assert rows(conninfo, "SELECT key, reason FROM kafka_listener_dead_letters") == [("broken", "handler_error")]

        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM broken_keys")
        listener_job = ListenerRestoreJob.from_settings(settings("consumer"), consumer_app.registry)
        try:
            assert listener_job.run_once().restored == 1
        finally:
            listener_job.close()
        publisher_job = PublisherRestoreJob.from_settings(settings("operator"))
        try:
            assert publisher_job.run_once().restored == 1  # the operator may write the denied topic
        finally:
            publisher_job.close()
        assert scalar(conninfo, "SELECT count(*) FROM effects WHERE key = 'broken'") == 1
    finally:
        for r in running:
            r.close()
    applied = rows(conninfo, "SELECT event_id FROM effects")
    assert sorted(str(r[0]) for r in applied) == sorted(str(e.event_id) for e in [*good, broken])  # once each

    secrets_ = _secrets(secure)
    dead = rows(conninfo, "SELECT row_to_json(d)::text FROM kafka_listener_dead_letters d") + rows(
        conninfo, "SELECT row_to_json(d)::text FROM kafka_publisher_dead_letters d"
    )
    logs = [caplog.text, *(p.read_text(errors="replace") for p in secure.run_dir.rglob("*.log"))]
    haystack = "\n".join([*logs, *(r[0] for r in dead)])
    assert len(haystack) > 1000
    assert [s for s in secrets_ if s in haystack] == []


@pytest.mark.parametrize("mechanism", ["scram", "mtls"])
def test_a_consumer_that_may_not_read_its_topic_exits_with_one_line(secure: DevStack, mechanism: str) -> None:
    admin_topic = UNREADABLE_TOPIC
    admin = AdminClient(secure.client_security("operator", "mtls"))
    for future in admin.create_topics([NewTopic(admin_topic, 1, 1)]).values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    schema = f"s_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(secure.postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    migrate.upgrade(secure.postgres.url(), schema=schema)
    bootstrap, block = _security(secure, "consumer", mechanism)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        **{f"KAFKAGUARD_KAFKA_SECURITY__{k.upper()}": str(v) for k, v in block.items()},
    }
    group = f"kafkaguard-denied-{uuid.uuid4().hex[:6]}"
    cmd = [sys.executable, "-m", "kafkaguard", "consume", "tests.integration.consumer_app:registry",
           "--group", group, "--topic", admin_topic, "--bootstrap-servers", bootstrap,
           "--url", secure.postgres.url(), "--schema", schema]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert any("authoriz" in line.lower() and admin_topic in line for line in lines), done.stderr
    assert not [s for s in _secrets(secure) if s in done.stderr + done.stdout]


@pytest.mark.parametrize("mechanism", ["scram", "mtls"])
def test_a_wrong_password_or_an_untrusted_certificate_stops_the_relay_at_start(
    secure: DevStack, mechanism: str, tmp_path: Path
) -> None:
    """`kafkaguard relay` with a wrong SCRAM password, or a client certificate from another CA, exits
    non-zero within its start timeout with one line naming the listener and the mechanism."""
    from kafkaguard.devstack.certs import self_signed

    bootstrap, block = _security(secure, "relay", mechanism)
    if mechanism == "scram":
        wrong = tmp_path / "password"
        wrong.write_text("not-the-relay-password\n")
        block = {**block, "password_file": str(wrong)}
        expect = "SASL_SSL/SCRAM-SHA-512"
    else:
        stranger = self_signed(tmp_path, "relay")
        block = {**block, "certificate_location": str(stranger.certificate), "key_location": str(stranger.key)}
        expect = "SSL"
    schema = f"s_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(secure.postgres.conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    migrate.upgrade(secure.postgres.url(), schema=schema)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]),
        "KAFKAGUARD_BOOTSTRAP_SERVERS": bootstrap,
        "KAFKAGUARD_DATABASE_URL": secure.postgres.url(),
        "KAFKAGUARD_DB_SCHEMA": schema,
        **{f"KAFKAGUARD_KAFKA_SECURITY__{k.upper()}": str(v) for k, v in block.items()},
    }
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "kafkaguard", "relay"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode != 0 and time.monotonic() - started < 90
    last = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(last) == 1 and expect in last[0] and bootstrap.split(",")[0] in last[0], done.stderr[-2000:]
    assert "not-the-relay-password" not in done.stderr + done.stdout
