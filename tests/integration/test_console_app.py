"""The operator console's pages and actions through FastAPI's TestClient, on the real PostgreSQL (and
Kafka for republishing): reads are open, every write needs the token and the CSRF token, retry goes
through the restore code once per record in key order, and every write is audited."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient
from sqlalchemy import text

from kafkaguard import create_console_app
from kafkaguard.console import actions
from kafkaguard.envelope import Event
from kafkaguard.stores.dead_letter_queries import Store
from kafkaguard.testing import free_ports
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.integration import consumer_app
from tests.integration.cli_operator_helpers import assert_one_error_line, db_args, run_cli
from tests.integration.console_helpers import (
    GROUP_A,
    GROUP_B,
    TOKEN,
    Seeded,
    console_settings,
    csrf_of,
    engine_of,
    listener_snapshot,
    publisher_snapshot,
    rows,
    seed,
)
from tests.integration.consumer_helpers import REPO
from tests.integration.dead_letter_rows import insert_publisher_dead_letter
from tests.integration.kafka_helpers import consume_all


def client_for(db: TestDatabase, bootstrap: str, **console: object) -> TestClient:
    app = create_console_app(console_settings(db, bootstrap, **console), engine_of(db), registry=consumer_app.registry)
    return TestClient(app)


def logged_in(client: TestClient) -> str:
    response = client.post("/login", data={"operator": "alice", "token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/dead-letters?store=listener").text)


def audit(db: TestDatabase) -> list[tuple[object, ...]]:
    return rows(
        db, "SELECT actor, action, outcome, requested, changed, reason FROM kafkaguard_console_audit ORDER BY id"
    )


OUTBOX_ROWS_SQL = (
    "INSERT INTO outbox (aggregatetype, aggregateid, type, payload) "
    "SELECT 'order', 'o' || n, 'order.placed', '{}'::jsonb FROM generate_series(1, 4) n"
)


def test_pages_are_readable_without_a_token_and_redact_payload_fields(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    db = migrated_database
    seeded = seed(db, consumer_app.new_group())
    client = client_for(db, kafka_bootstrap)

    with engine_of(db).begin() as conn:
        conn.execute(text(OUTBOX_ROWS_SQL))
    overview = client.get("/")
    assert f'<tr data-schema="{db.schema}"><td>{db.schema}</td><td class="num rows">4</td>' in overview.text
    assert overview.status_code == 200 and "<svg" in overview.text and "parked keys" in overview.text
    assert "frame-ancestors 'none'" in overview.headers["content-security-policy"]
    assert overview.headers["x-frame-options"] == "DENY"
    groups = client.get("/groups?store=listener")
    assert groups.status_code == 200
    assert f'data-group="{GROUP_A}"' in groups.text and f'data-group="{GROUP_B}"' in groups.text
    assert "line 10, in apply_effect" in groups.text and "line 42, in apply_other" in groups.text
    assert "Retry group" not in groups.text  # no actions offered to a reader

    listing = client.get(f"/dead-letters?store=listener&group={GROUP_A}")
    shown = {int(i) for i in _ids(listing.text)}
    assert shown == {seeded.ids[k][0] for k in ("a1", "a2", "a3")}  # the open heads of group A only

    head = seeded.ids["a1"][0]
    detail = client.get(f"/dead-letters/listener/{head}")
    assert detail.status_code == 200
    parked = detail.text.split('id="parked-behind"')[1]
    positions = [parked.index(f'data-id="{i}"') for i in seeded.ids["a1"][1:]]
    assert positions == sorted(positions) and len(positions) == 2  # the parked records behind it, in order
    assert "4111" not in detail.text and "[redacted]" in detail.text  # card redacted, raw bytes hidden
    assert "Raw bytes are not shown" in detail.text
    assert client.get("/dead-letters/listener/999999").status_code == 404

    exported = client.get(f"/dead-letters/export.json?store=listener&status=any&group={GROUP_A}").json()
    records = exported["records"]
    assert [r["id"] for r in records] == [seeded.ids["a1"][0], seeded.ids["a2"][0], seeded.ids["a3"][0]]
    assert records[0]["payload"] == {"seq": 0, "card": "[redacted]"}  # exports are redacted like pages
    assert "4111" not in json.dumps(exported)


def test_a_write_without_the_token_or_the_csrf_token_is_refused_and_changes_nothing(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    db = migrated_database
    seeded = seed(db, consumer_app.new_group())
    client = client_for(db, kafka_bootstrap)
    before = listener_snapshot(db)
    head = str(seeded.ids["a1"][0])

    anonymous = client.post("/actions/discard", data={"store": "listener", "id": head, "reason": "x", "csrf": "0"})
    wrong_token = client.post("/login", data={"operator": "mallory", "token": "guess"})
    assert anonymous.status_code == 401 and wrong_token.status_code == 401
    logged_in(client)
    no_csrf = client.post("/actions/retry", data={"store": "listener", "id": head})
    bearer_no_csrf = TestClient(client.app).post(
        "/actions/retry", data={"store": "listener", "id": head}, headers={"Authorization": f"Bearer {TOKEN}"}
    )

    assert no_csrf.status_code == 403 and bearer_no_csrf.status_code == 403
    assert listener_snapshot(db) == before
    outcomes = [(a[1], a[2]) for a in audit(db)]
    assert outcomes == [("discard", "refused"), ("login", "refused"), ("retry", "refused"), ("retry", "refused")]
    assert TOKEN not in client.get("/audit").text


def test_retrying_a_group_restores_each_record_once_in_key_order(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    group = consumer_app.new_group()
    seeded = seed(db, group)
    client = client_for(db, kafka_bootstrap)
    csrf = logged_in(client)
    before_b = _statuses(db, seeded, "b1")

    response = client.post(
        "/actions/retry", data={"store": "listener", "scope": "group", "group": GROUP_A, "csrf": csrf}
    )

    assert response.status_code == 200, response.text
    assert "3 of 3 restored" in finished_job(client, response.url.path)
    _assert_group_a_restored_once_in_order(db, seeded)
    assert _statuses(db, seeded, "b1") == before_b  # the other group untouched
    assert audit(db)[-1] == ("alice", "retry", "done", 3, 6, None)  # 3 heads asked, 6 records restored


def test_discard_needs_a_reason_and_keeps_it(migrated_database: TestDatabase, kafka_bootstrap: str) -> None:
    db = migrated_database
    seeded = seed(db, consumer_app.new_group())
    client = client_for(db, kafka_bootstrap)
    csrf = logged_in(client)
    head = seeded.ids["b1"][0]

    no_reason = client.post("/actions/discard", data={"store": "listener", "id": str(head), "csrf": csrf})
    done = client.post(
        "/actions/discard", data={"store": "listener", "id": str(head), "csrf": csrf, "reason": "bad test data"}
    )

    assert no_reason.status_code == 409 and done.status_code == 200
    status, history = rows(db, "SELECT status, history FROM kafka_listener_dead_letters WHERE id = %s", (head,))[0]
    assert status == "discarded" and history[-1]["reason"] == "bad test data" and history[-1]["by"] == "console:alice"
    assert audit(db)[-1] == ("alice", "discard", "done", 1, 1, "bad test data")


def test_edit_and_retry_is_refused_while_the_setting_is_off(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    db = migrated_database
    seeded = seed(db, consumer_app.new_group(), publisher_topic=topics("console-edit"))
    client = client_for(db, kafka_bootstrap)
    csrf = logged_in(client)
    before = publisher_snapshot(db)
    record_id = seeded.publisher[0][0]

    response = client.post(
        "/actions/edit", data={"store": "publisher", "id": str(record_id), "csrf": csrf, "payload": '{"n": 9}'}
    )

    assert response.status_code == 403 and "edit-and-retry is off" in response.text
    assert publisher_snapshot(db) == before


def test_edit_and_retry_republishes_a_copy_whose_lineage_names_the_original(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    db = migrated_database
    topic = topics("console-edit-on")
    seeded = seed(db, consumer_app.new_group(), publisher_topic=topic, publisher_count=1)
    client = client_for(db, kafka_bootstrap, edit_and_retry=True, redact_fields=[])
    csrf = logged_in(client)
    record_id, event = seeded.publisher[0]
    detail = client.get(f"/dead-letters/publisher/{record_id}?hex=1").text
    shown_hex = detail.split('<pre id="hex">')[1].split("</pre>")[0]
    assert json.loads(bytes.fromhex(shown_hex)) == event.payload  # raw bytes on demand, without redaction
    assert 'id="edit-retry"' in detail

    response = client.post(
        "/actions/edit", data={"store": "publisher", "id": str(record_id), "csrf": csrf, "payload": '{"n": 9}'}
    )

    assert response.status_code == 200, response.text
    # The copy took the original's id (its place in the key's order); the original moved behind, discarded.
    [(copy_id, copy_status, copy_headers, copy_payload, copy_event), (moved_id, original_status, history, event_id)] = [
        *rows(db, "SELECT id, status, headers, payload, event_id FROM kafka_publisher_dead_letters WHERE id = %s",
              (record_id,)),
        *rows(db, "SELECT id, status, history, event_id FROM kafka_publisher_dead_letters WHERE id <> %s",
              (record_id,)),
    ]  # fmt: skip
    assert event_id == event.event_id and moved_id > copy_id
    assert original_status == "discarded" and history[-1]["what"] == "edited" and history[-1]["copy_id"] == copy_id
    assert copy_status == "restored" and copy_payload == {"n": 9} and copy_event != event.event_id
    assert copy_headers["kafkaguard_edited_from"] == str(event.event_id)
    [message] = consume_all(kafka_bootstrap, topic, 1, timeout=30)
    assert json.loads(message.value() or b"") == {"n": 9}


def test_redrive_sends_a_publisher_dead_letter_to_its_original_topic(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    db = migrated_database
    topic = topics("console-redrive")
    seeded = seed(db, consumer_app.new_group(), publisher_topic=topic, publisher_count=2)
    client = client_for(db, kafka_bootstrap)
    csrf = logged_in(client)
    record_id, event = seeded.publisher[1]

    response = client.post("/actions/redrive", data={"store": "publisher", "id": str(record_id), "csrf": csrf})

    assert response.status_code == 200, response.text
    assert "1 of 1 restored" in finished_job(client, response.url.path)
    messages = consume_all(kafka_bootstrap, topic, 1, timeout=30)
    assert [m.key() for m in messages] == [event.key.encode()]
    assert dict(messages[0].headers() or [])["event_id"] == str(event.event_id).encode()
    assert [s for (s,) in rows(db, "SELECT status FROM kafka_publisher_dead_letters ORDER BY id")] == [
        "pending", "restored"
    ]  # fmt: skip


def test_dead_letter_pages_are_keyset_paginated(migrated_database: TestDatabase, kafka_bootstrap: str) -> None:
    db = migrated_database
    with engine_of(db).begin() as conn:
        conn.exec_driver_sql(
            'INSERT INTO kafka_listener_dead_letters (consumer_group, topic, partition, "offset", key, reason, '
            "error_class, status) SELECT 'g', 't', 0, n, 'k' || n, 'handler_error', 'E', 'pending' "
            "FROM generate_series(1, 120) n"
        )
    client = client_for(db, kafka_bootstrap)
    seen: list[int] = []
    url = "/dead-letters?store=listener&status=open"
    while url:
        html = client.get(url).text
        seen += [int(i) for i in _ids(html)]
        nxt = html.split('id="next" href="')
        url = nxt[1].split('"')[0].replace("&amp;", "&") if len(nxt) > 1 else ""
    assert len(seen) == 120 and seen == sorted(set(seen))


def finished_job(client: TestClient, path: str, *, deadline_s: float = 60) -> str:
    """The job page at ``path`` once its job finished (polled with a deadline); returns its message."""
    assert path.startswith("/jobs/"), path
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        html = client.get(path).text
        if 'data-finished="yes"' in html:
            return html.split('id="message">')[1].split("<")[0]
        time.sleep(0.05)  # polling the job's page, with a deadline
    raise AssertionError(f"job {path} did not finish within {deadline_s} s")


def _ids(html: str) -> list[str]:
    return [part.split('"')[0] for part in html.split('<tr data-id="')[1:]]


def _statuses(db: TestDatabase, seeded: Seeded, key: str) -> list[tuple[object, ...]]:
    return rows(db, "SELECT id, status, attempts FROM kafka_listener_dead_letters WHERE key = %s ORDER BY id", (key,))


def _assert_group_a_restored_once_in_order(db: TestDatabase, seeded: Seeded) -> None:
    applied = rows(db, "SELECT key, seq, event_id::text FROM effects ORDER BY id")
    for key, events in seeded.keys_a.items():
        mine = [(s, e) for k, s, e in applied if k == key]
        assert mine == [(e.payload["seq"], str(e.event_id)) for e in events], key  # once each, in key order
    assert not [k for k, _, _ in applied if k in seeded.keys_b]
    statuses = rows(
        db, "SELECT status, count(*) FROM kafka_listener_dead_letters WHERE key = ANY(%s) GROUP BY 1",
        (list(seeded.keys_a),),
    )  # fmt: skip
    assert statuses == [("restored", 6)]


def test_the_console_command_refuses_a_non_loopback_host_without_a_token(migrated_database: TestDatabase) -> None:
    result = run_cli("console", "--host", "0.0.0.0", *db_args(migrated_database))
    line = assert_one_error_line(result, 2)
    assert "not a loopback address" in line and "operator_token" in line


def test_the_console_command_serves_the_pages(migrated_database: TestDatabase) -> None:
    [port] = free_ports(1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)]), "KAFKAGUARD_DATABASE_URL": ""}
    env["KAFKAGUARD_CONSOLE__OPERATOR_TOKEN"] = TOKEN
    args = [sys.executable, "-m", "kafkaguard", "console", "--port", str(port), *db_args(migrated_database)]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        status = poll_status(f"http://127.0.0.1:{port}/groups?store=publisher", deadline_s=30, proc=proc)
        assert status == 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "operator token required to act" in out, (out, err)
    assert TOKEN not in out + err


def poll_status(url: str, *, deadline_s: float, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"kafkaguard console exited with {proc.returncode}")
        try:
            return httpx.get(url, timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.1)  # polling for the server to listen, with a deadline
    raise AssertionError(f"{url} did not answer within {deadline_s} s")


class CancelAfter:
    """A job's progress that asks to stop once ``units`` keys were processed."""

    def __init__(self, units: int) -> None:
        self.units, self.seen = units, 0

    def advance(self, records: int) -> None:
        self.seen += 1

    def cancelled(self) -> bool:
        return self.seen >= self.units


def test_a_cancelled_retry_stops_before_the_next_key_and_leaves_the_rest_untouched(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    seeded = seed(db, consumer_app.new_group())
    engine = engine_of(db)
    heads = [seeded.ids[k][0] for k in ("a1", "a2", "a3")]
    untouched = [r for r in listener_snapshot(db) if r[0] in seeded.ids["a2"] + seeded.ids["a3"]]

    plan = actions.plan_retry(console_settings(db, kafka_bootstrap), engine, Store.LISTENER, heads, by="t",
                              registry=consumer_app.registry)  # fmt: skip
    result = actions.run_retry(plan, CancelAfter(1))

    assert result.cancelled and "cancelled: 2 record(s) not reached" in result.message
    assert [k for k, _ in rows(db, "SELECT key, seq FROM effects ORDER BY id")] == ["a1", "a1", "a1"]
    assert [r for r in listener_snapshot(db) if r[0] in seeded.ids["a2"] + seeded.ids["a3"]] == untouched


def test_the_lag_page_shows_a_groups_lag_read_from_kafka(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    topic = topics("console-lag", partitions=1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for n in range(5):
        producer.produce(topic, key=b"k", value=str(n).encode())
    assert producer.flush(30) == 0
    group = f"console-lag-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)  # 2 of 5 read: lag 3
    finally:
        consumer.close()

    page = client_for(migrated_database, kafka_bootstrap).get("/lag")

    assert page.status_code == 200
    row = page.text.split(f'<tr data-group="{group}">')[1].split("</tr>")[0]
    assert '<td class="num lag">3</td>' in row and f"{topic}: 3" in row


def test_the_lag_page_says_when_kafka_cannot_be_read(migrated_database: TestDatabase) -> None:
    [port] = free_ports(1)
    page = client_for(migrated_database, f"127.0.0.1:{port}").get("/lag")
    assert page.status_code == 200 and 'id="problem"' in page.text and f"127.0.0.1:{port}" in page.text


def test_an_edited_copy_keeps_its_keys_order(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory
) -> None:
    db = migrated_database
    topic = topics("console-edit-order", partitions=1)
    first = Event(type="order.placed", key="order-7", aggregate_type="order", payload={"step": "broken"})
    second = Event(type="order.placed", key="order-7", aggregate_type="order", payload={"step": "second"})
    with engine_of(db).begin() as conn:
        head = insert_publisher_dead_letter(conn, first, topic)
        insert_publisher_dead_letter(conn, second, topic)
    client = client_for(db, kafka_bootstrap, edit_and_retry=True, redact_fields=[])
    csrf = logged_in(client)

    response = client.post(
        "/actions/edit", data={"store": "publisher", "id": str(head), "csrf": csrf, "payload": '{"step": "fixed"}'}
    )

    assert response.status_code == 200, response.text
    values = [json.loads(m.value() or b"") for m in consume_all(kafka_bootstrap, topic, 2, timeout=30)]
    assert values == [{"step": "fixed"}, {"step": "second"}]  # the fixed head first, then the one behind it


def test_an_edited_listener_head_is_applied_as_a_new_event_before_the_records_parked_behind_it(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    seeded = seed(db, consumer_app.new_group())
    client = client_for(db, kafka_bootstrap, edit_and_retry=True, redact_fields=[])
    csrf = logged_in(client)
    head = seeded.ids["a1"][0]
    original = seeded.keys_a["a1"][0]
    assert 'id="edit-retry"' in client.get(f"/dead-letters/listener/{head}").text

    response = client.post(
        "/actions/edit", data={"store": "listener", "id": str(head), "csrf": csrf, "payload": '{"seq": 0, "ok": 1}'}
    )

    assert response.status_code == 200, response.text
    applied = rows(db, "SELECT seq, event_id FROM effects WHERE key = 'a1' ORDER BY id")
    assert [s for s, _ in applied] == [0, 1, 2]  # the fixed head first, then the parked ones, once each
    assert applied[0][1] != original.event_id
    assert [e for _, e in applied[1:]] == [e.event_id for e in seeded.keys_a["a1"][1:]]
    event_id, headers, history, status = rows(
        db, "SELECT event_id, headers, history, status FROM kafka_listener_dead_letters WHERE id = %s", (head,)
    )[0]
    assert status == "restored" and event_id == applied[0][1]
    assert headers["kafkaguard_edited_from"] == str(original.event_id)
    edited = next(h for h in history if h["what"] == "edited")
    assert edited["edited_from"] == str(original.event_id)
    assert bytes.fromhex(edited["original_value"]) == original.payload_bytes()


def test_a_payload_deeper_than_python_parses_is_shown_as_text(
    migrated_database: TestDatabase, kafka_bootstrap: str
) -> None:
    db = migrated_database
    deep = '{"a": ' * 3000 + "1" + "}" * 3000
    with engine_of(db).begin() as conn:
        conn.execute(
            text(
                "INSERT INTO kafka_publisher_dead_letters (event_id, key, type, aggregate_type, topic, payload, "
                "occurred_at, source) VALUES (gen_random_uuid(), 'k', 't.x', 't', 't', CAST(:p AS jsonb), now(), "
                "'outbox') RETURNING id"
            ),
            {"p": deep},
        )
    client = client_for(db, kafka_bootstrap, redact_fields=[])
    [(record_id,)] = rows(db, "SELECT id FROM kafka_publisher_dead_letters")

    page = client.get(f"/dead-letters/publisher/{record_id}")

    assert page.status_code == 200
    assert page.text.count("{&#34;a&#34;: ") > 2900  # the stored text, not parsed
