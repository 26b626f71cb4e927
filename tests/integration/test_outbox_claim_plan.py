"""The relay's claim is planned as one serial walk of the ``seq`` index, even without statistics.

A backlog that grew faster than autovacuum analyses it (a Kafka outage, a bulk import) leaves the
planner guessing. It then chose a parallel plan for the 500-row claim: two workers started per
claim cost 7.7 ms against 1.5 ms serial, and the claim was 60 % of the relay's wall time. The
relay's work connection turns parallel plans (and sorts) off; these tests show the plan it gets
and that the store's claim reads the same rows in the same order.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from kafkaguard.stores import outbox as relay_store
from kafkaguard.stores.outbox import PostgresOutbox
from kafkaguard.testing.fixtures import TestDatabase

ROWS = 100_000  # ~30 MB of outbox: above the sizes from which PostgreSQL considers parallel scans


@pytest.fixture
def stale_backlog(migrated_database: TestDatabase) -> TestDatabase:
    """``ROWS`` outbox rows in 64 shards that the planner has no statistics for."""
    with psycopg.connect(migrated_database.conninfo, autocommit=True) as conn:
        conn.execute("ALTER TABLE outbox SET (autovacuum_enabled = false)")  # keep the statistics absent
        conn.execute(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload)"
            " SELECT gen_random_uuid(), 'order', 'key-' || (i %% 1000), 'order.placed',"
            " jsonb_build_object('n', i, 'data', repeat('x', 200)) FROM generate_series(1, %s) AS i",
            (ROWS,),
        )
    return migrated_database


def plan_nodes(conn: psycopg.Connection[Any], *, skip_blocked_keys: bool) -> list[str]:
    """The node types of the claim's plan on ``conn`` (all 64 shards, 500 rows)."""
    sql = "EXPLAIN (FORMAT JSON) " + relay_store.claim_sql(skip_blocked_keys=skip_blocked_keys)
    row = conn.execute(sql, relay_store.claim_params(range(64), 500)).fetchone()
    assert row is not None
    plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
    nodes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node["Node Type"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return nodes


@pytest.mark.parametrize("skip_blocked_keys", [True, False])
def test_claim_plan_is_serial_and_unsorted_without_statistics(
    stale_backlog: TestDatabase, skip_blocked_keys: bool
) -> None:
    with psycopg.connect(stale_backlog.conninfo, autocommit=True) as plain:
        # The planner's own choice on this backlog, which the relay's settings exist to avoid.
        default_nodes = plan_nodes(plain, skip_blocked_keys=skip_blocked_keys)
    assert {"Gather", "Gather Merge", "Sort"} & set(default_nodes), default_nodes
    with psycopg.connect(stale_backlog.conninfo, autocommit=True) as relay_conn:
        relay_store.prepare_session(relay_conn)
        nodes = plan_nodes(relay_conn, skip_blocked_keys=skip_blocked_keys)
    assert not {"Gather", "Gather Merge", "Sort"} & set(nodes), nodes
    assert "Index Scan" in nodes, nodes


def test_store_claims_the_oldest_rows_in_seq_order(stale_backlog: TestDatabase) -> None:
    with psycopg.connect(stale_backlog.conninfo, autocommit=True) as conn:
        expected = [r[0] for r in conn.execute("SELECT id::text FROM outbox ORDER BY seq LIMIT 500")]
    store = PostgresOutbox(stale_backlog.conninfo)
    store.connect()
    try:
        store.try_lock_shards(range(64), 64)
        first = store.claim(range(64), 500, skip_blocked_keys=True)
        second = store.claim(range(64), 500, skip_blocked_keys=True, in_flight=[r.id for r in first])
    finally:
        store.close()
    assert [r.id for r in first] == expected
    assert [r.seq for r in second] == sorted(r.seq for r in second)
    assert min(r.seq for r in second) > max(r.seq for r in first)
