"""The operator console in a real browser (Debian's chromium, headless) on the real PostgreSQL and Kafka.

The issue's acceptance, step by step as an operator clicks it: overview, filter to a failure group,
a parked key's head, retry the group (then the database: every record of the group restored exactly
once, in per-key order), discard with a reason, redrive a publisher dead letter and read it back with
a plain Kafka consumer, a write without the token refused with nothing changed, edit-and-retry
refused while the setting is off. Each page is saved as a screenshot (reports/console/).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Page, expect

from kafkaguard import create_console_app
from kafkaguard.testing.fixtures import TestDatabase, TopicFactory
from tests.browser.helpers import screenshot, serving
from tests.integration import consumer_app
from tests.integration.console_helpers import (
    GROUP_A,
    GROUP_B,
    TOKEN,
    console_settings,
    engine_of,
    listener_snapshot,
    publisher_snapshot,
    rows,
    seed,
)
from tests.integration.kafka_helpers import consume_all


@contextmanager
def console(db: TestDatabase, bootstrap: str, **settings: object) -> Iterator[str]:
    app = create_console_app(console_settings(db, bootstrap, **settings), engine_of(db), registry=consumer_app.registry)
    with serving(app) as base:
        yield base


def log_in(page: Page, base: str, name: str = "alice", *, shot: bool = False) -> None:
    page.goto(f"{base}/login")
    page.fill("#operator", name)
    page.fill("#token", TOKEN)
    if shot:
        screenshot(page, "login")
    page.click("#login")
    expect(page.locator("header .who")).to_contain_text(f"operator {name}")


def test_operator_retries_a_failure_group_and_discards_with_a_reason(
    migrated_database: TestDatabase, kafka_bootstrap: str, page: Page
) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    seeded = seed(db, consumer_app.new_group())
    with console(db, kafka_bootstrap) as base:
        # Overview: three keys have parked records (a1, a2, b1); the chart is there.
        page.goto(base)
        expect(page.locator("#parked b")).to_have_text("3")
        expect(page.locator("svg.chart")).to_be_visible()
        screenshot(page, "overview")

        # Failure groups: one error class, two throwing frames -> two groups; filter to group A.
        page.click("text=Failure groups")
        expect(page.locator("#groups tr[data-group]")).to_have_count(2)
        expect(page.locator(f'tr[data-group="{GROUP_A}"] .count')).to_have_text("3")
        screenshot(page, "groups")
        page.click(f'tr[data-group="{GROUP_A}"] a.group-link')
        expect(page).to_have_url(f"{base}/dead-letters?store=listener&status=open&group={GROUP_A}")
        expect(page.locator("#records tr[data-id]")).to_have_count(3)
        screenshot(page, "dead-letters")

        # A parked key's head: its parked records behind it, in arrival order; the card field redacted.
        page.click(f'a.record-link[href="/dead-letters/listener/{seeded.ids["a1"][0]}"]')
        behind = page.locator("#parked-behind tr[data-id]")
        expect(behind).to_have_count(2)
        assert [behind.nth(i).get_attribute("data-id") for i in range(2)] == [str(i) for i in seeded.ids["a1"][1:]]
        expect(page.locator("#payload")).to_contain_text("[redacted]")
        expect(page.locator("#stack")).to_contain_text("line 10, in apply_effect")
        screenshot(page, "detail")

        # Retry the whole group as a logged-in operator.
        log_in(page, base, shot=True)
        page.goto(f"{base}/groups?store=listener")
        page.click(f'tr[data-group="{GROUP_A}"] button.retry-group')
        expect(page.locator("#message")).to_contain_text("3 of 3 restored")
        expect(page.locator("#message")).to_contain_text("3 parked record(s)")
        screenshot(page, "retried")

        applied = rows(db, "SELECT key, seq, event_id::text FROM effects ORDER BY id")
        for key, events in seeded.keys_a.items():  # exactly once each, in the key's order
            assert [(s, e) for k, s, e in applied if k == key] == [
                (ev.payload["seq"], str(ev.event_id)) for ev in events
            ]
        assert len(applied) == 6
        a_ids = [i for k in seeded.keys_a for i in seeded.ids[k]]
        statuses = rows(db, "SELECT status FROM kafka_listener_dead_letters WHERE id = ANY(%s)", (a_ids,))
        assert {s for (s,) in statuses} == {"restored"}

        # Discard group B's head with a reason.
        head_b = seeded.ids["b1"][0]
        page.goto(f"{base}/dead-letters/listener/{head_b}")
        page.fill("#discard-reason", "test data from a broken producer")
        page.click("#discard-one")
        expect(page.locator("#message")).to_contain_text("discarded 1 of 1")
        status, history = rows(db, "SELECT status, history FROM kafka_listener_dead_letters WHERE id = %s", (head_b,))[
            0
        ]
        assert status == "discarded" and history[-1]["reason"] == "test data from a broken producer"

        # The audit log shows who did what to how many.
        page.goto(f"{base}/audit")
        expect(page.locator('#audit tr[data-action="retry"][data-outcome="done"]')).to_contain_text("alice")
        expect(page.locator('#audit tr[data-action="discard"][data-outcome="done"]')).to_contain_text(
            "test data from a broken producer"
        )
        screenshot(page, "audit")
        page.click("text=Consumer lag")
        expect(page.locator("h1")).to_have_text("Consumer lag")
        screenshot(page, "lag")
        assert GROUP_B  # group B was never retried: its parked record still waits
        assert rows(db, "SELECT status FROM kafka_listener_dead_letters WHERE id = %s", (seeded.ids["b1"][1],)) == [
            ("parked",)
        ]


def test_redrive_sends_publisher_dead_letters_to_their_topic(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory, page: Page
) -> None:
    db = migrated_database
    topic = topics("console-browser-redrive")
    seeded = seed(db, consumer_app.new_group(), publisher_topic=topic, publisher_count=3)
    with console(db, kafka_bootstrap) as base:
        log_in(page, base)
        page.goto(f"{base}/groups?store=publisher")
        expect(page.locator("#groups tr[data-group]")).to_have_count(1)
        page.click("button.redrive-group")
        expect(page.locator("#message")).to_contain_text("3 of 3 restored")
        screenshot(page, "redriven")

    messages = consume_all(kafka_bootstrap, topic, 3, timeout=30)  # a plain confluent-kafka Consumer
    assert sorted(m.key() or b"" for m in messages) == sorted(e.key.encode() for _, e in seeded.publisher)
    event_ids = {dict(m.headers() or [])["event_id"] for m in messages}
    assert event_ids == {str(e.event_id).encode() for _, e in seeded.publisher}
    assert rows(db, "SELECT DISTINCT status, restored_by FROM kafka_publisher_dead_letters") == [
        ("restored", "republish")
    ]


FORGED = """<form id="f" method="post" action="{base}/actions/{action}">
<input name="store" value="{store}"><input name="id" value="{record_id}"><input name="reason" value="forged">
<input name="csrf" value="00"><input name="payload" value='{{"n": 1}}'></form>"""


def test_writes_without_the_token_and_edit_and_retry_while_off_are_refused_and_change_nothing(
    migrated_database: TestDatabase, kafka_bootstrap: str, topics: TopicFactory, page: Page
) -> None:
    db = migrated_database
    seeded = seed(db, consumer_app.new_group(), publisher_topic=topics("console-browser-refused"))
    listener_before, publisher_before = listener_snapshot(db), publisher_snapshot(db)
    with console(db, kafka_bootstrap) as base:
        # A reader sees no action at all.
        page.goto(f"{base}/dead-letters/listener/{seeded.ids['a1'][0]}")
        expect(page.locator("#retry-one")).to_have_count(0)

        # A form from elsewhere posting a discard without the token: 401, nothing changed.
        page.set_content(FORGED.format(base=base, action="discard", store="listener", record_id=seeded.ids["a1"][0]))
        with page.expect_navigation():
            page.evaluate("document.getElementById('f').submit()")
        expect(page.locator("#message")).to_contain_text("an operator token is needed")
        screenshot(page, "refused")

        # Logged in, edit-and-retry is refused while console.edit_and_retry is off (403), even with a valid CSRF token.
        log_in(page, base)
        record_id = seeded.publisher[0][0]
        page.goto(f"{base}/dead-letters/publisher/{record_id}")
        expect(page.locator("main")).to_contain_text("Edit-and-retry is off")
        status = page.evaluate(
            """async ([id]) => {
                 const csrf = document.querySelector('input[name=csrf]').value;
                 const body = new URLSearchParams({store: 'publisher', id: String(id), csrf, payload: '{"n": 1}'});
                 return (await fetch('/actions/edit', {method: 'POST', body})).status;
               }""",
            [record_id],
        )
        assert status == 403

    assert listener_snapshot(db) == listener_before
    assert publisher_snapshot(db) == publisher_before
    outcomes = rows(db, "SELECT action, outcome FROM kafkaguard_console_audit ORDER BY id")
    assert outcomes == [("discard", "refused"), ("edit", "refused")]


def test_retry_a_selection_and_one_record(migrated_database: TestDatabase, kafka_bootstrap: str, page: Page) -> None:
    db = migrated_database
    consumer_app.create_tables(db.conninfo)
    seeded = seed(db, consumer_app.new_group())
    with console(db, kafka_bootstrap) as base:
        log_in(page, base)
        # A selection: the heads of a1 and a3 ticked on the dead-letters page.
        page.goto(f"{base}/dead-letters?store=listener&group={GROUP_A}")
        for key in ("a1", "a3"):
            page.check(f'#records input[value="{seeded.ids[key][0]}"]')
        page.click("text=Retry selected")
        expect(page.locator("#message")).to_contain_text("2 of 2 restored")
        # One record: b1's head from its own page.
        page.goto(f"{base}/dead-letters/listener/{seeded.ids['b1'][0]}")
        page.click("#retry-one")
        expect(page.locator("#message")).to_contain_text("1 of 1 restored")

    applied = rows(db, "SELECT key, seq FROM effects ORDER BY id")
    assert [(k, s) for k, s in applied if k == "a1"] == [("a1", 0), ("a1", 1), ("a1", 2)]
    assert [(k, s) for k, s in applied if k == "b1"] == [("b1", 0), ("b1", 1)]
    assert sorted(k for k, _ in applied) == ["a1", "a1", "a1", "a3", "b1", "b1"]  # a2 was not chosen
    status_a2 = rows(db, "SELECT status FROM kafka_listener_dead_letters WHERE id = %s", (seeded.ids["a2"][0],))
    assert status_a2 == [("failed",)]
