"""Parts 1–3: the two limits of a relay on this box, kafkaguard's relay against them, and a peer.

- producer ceiling: raw confluent-kafka producing the same messages (value, key, headers of the
  pre-filled rows) with the relay's producer settings (``acks=all``, idempotence, lz4, linger 5 ms);
- database ceiling: a raw psycopg loop claiming the same pre-filled rows 500 at a time with the
  relay's claim query and plan (in ``seq`` order, ``enable_sort=off``) and deleting them, one
  commit per batch, one batch after the other (all 64 shards, no dead-letter check: a ceiling);
- relay: ``python -m kafkaguard relay`` with default settings — 1 instance, 2 instances (two
  commands), and one command with ``--processes 2`` / ``--processes 3`` (:data:`RELAYS`) — started on
  an empty outbox and owning their shards before the backlog commits in one transaction; timed from
  that commit until the outbox is empty (every row's ack seen, since rows leave only after the ack);
  the best of them is the "best configuration" of the notes;
- Debezium: Kafka Connect with Debezium's connector and kafkaguard's generated configuration, the
  same backlog, measured in the same rounds (see :mod:`bench.debezium_relay`);
- peers: ``faststream-outbox``'s relay (see :mod:`bench.peer_faststream`), when installed, and
  ``txoutbox``'s (see :mod:`bench.peer_txoutbox`), measured on ``peer_rows`` rows (their cost is per row).

The variants run interleaved, ``rounds`` times; the table shows the median of the rounds.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench import debezium_relay, peer_faststream, peer_txoutbox
from bench.common import (
    REPORT_DIR,
    BenchDb,
    Report,
    Stack,
    client_security,
    median,
    new_schema,
    new_topic,
    outbox_empty,
    prefill,
    shard_owners,
    start_relay,
    stop,
    wait_until,
)
from kafkaguard.relay.rows import CLAIM_COLUMNS, OutboxRow, to_message
from kafkaguard.stores import outbox as relay_store
from kafkaguard.transports.kafka_config import producer_config

BATCH = 500  # the relay's default batch_size, used by the database ceiling too


def producer_ceiling(stack: Stack, db: BenchDb, rows: int) -> float:
    """Events/s of raw confluent-kafka producing the pre-filled rows' messages, all acknowledged."""
    aggregate = f"p{uuid.uuid4().hex[:8]}"
    prefill(db, rows, aggregate=aggregate)
    with db.connect() as conn:
        fetched = conn.execute(f"SELECT {CLAIM_COLUMNS} FROM outbox o ORDER BY seq").fetchall()  # noqa: S608
        conn.execute("DELETE FROM outbox")
    messages = []
    for r in fetched:
        m = to_message(OutboxRow(*r))  # the relay's exact messages
        messages.append((m.value, m.key, m.headers))
    topic = new_topic(stack, aggregate)
    producer = Producer(producer_config(stack.bootstrap, client_security()))
    acked = [0]
    failed = [0]

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is None:
            acked[0] += 1
        else:
            failed[0] += 1

    producer.produce(topic, value=b"{}", key=b"warm-up")  # connect and get a producer id first
    producer.flush(30)
    started = time.perf_counter()
    for value, key, headers in messages:
        while True:
            try:
                producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    if acked[0] != rows or failed[0]:
        raise RuntimeError(f"producer ceiling: {acked[0]} acked, {failed[0]} failed of {rows}")
    return rows / elapsed


def database_ceiling(db: BenchDb, rows: int) -> float:
    """Rows/s of a raw psycopg loop that claims and deletes the pre-filled rows in batches of 500."""
    prefill(db, rows, aggregate=f"d{uuid.uuid4().hex[:8]}")
    shards = list(range(64))
    claim = relay_store.claim_sql(skip_blocked_keys=False)
    done = 0
    with db.connect(autocommit=True) as conn:
        relay_store.prepare_session(conn)  # the relay's plan: walk the seq index
        started = time.perf_counter()
        while True:
            # The relay's claim query, but prepared by psycopg after five runs (its default): without the
            # relay's in-flight and dead-letter filters the generic plan is the fastest (75,000 vs
            # 44,000 rows/s planned each time), and a ceiling should be the fastest loop.
            batch = conn.execute(claim, relay_store.claim_params(shards, BATCH)).fetchall()
            if not batch:
                break
            conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", ([r[0] for r in batch],))
            done += len(batch)
        elapsed = time.perf_counter() - started
    if done != rows:
        raise RuntimeError(f"database ceiling: {done} of {rows} rows claimed")
    return rows / elapsed


def relay_rate(stack: Stack, rows: int, instances: int, logs: Path, *, processes: int = 1, **env: str) -> float:
    """Events/s of ``instances`` relay commands, each ``--processes processes``, draining a backlog of
    ``rows`` (commit → empty outbox). ``env``: more settings for the relays (``KAFKAGUARD_RELAY__...``)."""
    db = new_schema(stack, "r")
    aggregate = f"r{uuid.uuid4().hex[:8]}"
    new_topic(stack, aggregate)
    if processes > 1:
        env = {**env, "KAFKAGUARD_RELAY__PROCESSES": str(processes)}
    procs = [
        start_relay(db, stack.bootstrap, logs / f"relay-{db.schema}-{i}.log", name=f"bench-{i}", **env)
        for i in range(instances)
    ]
    owners = instances * processes
    try:
        wait_until(lambda: _shared(shard_owners(db), owners), 120, f"{owners} relays owning their share of the shards")
        prefill(db, rows, aggregate=aggregate)  # visible to the relays at this commit
        committed = time.perf_counter()
        wait_until(outbox_empty(db), 600, "the relays to drain the outbox")
        elapsed = time.perf_counter() - committed
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a relay exited with {p.returncode}; see {logs}")
    finally:
        for p in procs:
            stop(p)
    return rows / elapsed


def _shared(owners: list[int], count: int) -> bool:
    """All 64 shards held by ``count`` relays, none above its fair share (so none takes more later)."""
    return len(owners) == count and sum(owners) == 64 and max(owners) <= -(-64 // count)


# The relay variants: key -> (label, relay commands, --processes of each, relay.batch_size or None for
# the default). "relay1" is the default deployment (one `kafkaguard relay`); "relay2" two separate
# commands; "relay_p<N>" one command with `--processes N` (relay.processes), the configuration the
# docs recommend on a multi-core host.
RELAYS: dict[str, tuple[str, int, int, int | None]] = {
    "relay1": ("kafkaguard relay, 1 instance (default settings)", 1, 1, None),
    "relay2": ("kafkaguard relay, 2 instances (two commands)", 2, 1, None),
    "relay_p2": ("kafkaguard relay --processes 2 (one command)", 1, 2, None),
    "relay_p3": ("kafkaguard relay --processes 3 (one command)", 1, 3, None),
    # One relay waits on the database and the broker for most of a 500-row round (39 % of a core
    # busy at 20,000 rows/s, measured): bigger rounds make fewer of those waits per row.
    "relay1_b2000": ("kafkaguard relay, 1 instance, relay.batch_size=2000", 1, 1, 2000),
    "relay_p2_b2000": ("kafkaguard relay --processes 2, relay.batch_size=2000", 1, 2, 2000),
}


def run(stack: Stack, *, rows: int, rounds: int, profile: str, peer_rows: int) -> Report:
    logs = REPORT_DIR / "logs"
    ceiling_db = new_schema(stack, "c")
    samples: dict[str, list[float]] = {
        "producer": [],
        "database": [],
        **{k: [] for k in RELAYS},
        "debezium": [],
        "peer": [],
        "txoutbox": [],
    }
    peer_status = peer_faststream.available()
    txoutbox_status = peer_txoutbox.available()  # the second Python peer (bench/peer_txoutbox.py)
    for _ in range(rounds):
        samples["producer"].append(producer_ceiling(stack, ceiling_db, rows))
        samples["database"].append(database_ceiling(ceiling_db, rows))
        for key, (_label, instances, processes, batch) in RELAYS.items():
            env = {} if batch is None else {"KAFKAGUARD_RELAY__BATCH_SIZE": str(batch)}
            samples[key].append(relay_rate(stack, rows, instances, logs, processes=processes, **env))
        samples["debezium"].append(debezium_relay.relay_rate(stack, rows, logs))
        if peer_status is None:
            samples["peer"].append(peer_faststream.relay_rate(stack, peer_rows, logs))
        if txoutbox_status is None:
            samples["txoutbox"].append(peer_txoutbox.relay_rate(stack, peer_rows, logs))
    med = {k: median(v) for k, v in samples.items()}
    limit = min(med["producer"], med["database"])
    bound = "producer" if med["producer"] <= med["database"] else "database"
    report = Report(
        "relay",
        f"Relay throughput — {rows:,} events of 200 B over 1,000 keys, acks=all + idempotence, "
        f"synchronous_commit=on (median of {rounds} interleaved rounds)",
        ["variant", "events/s", "× lower limit", "rounds (events/s)"],
    )

    def row(label: str, key: str) -> None:
        report.add(label, med[key], med[key] / limit, ", ".join(f"{x:,.0f}" for x in samples[key]))

    row("producer ceiling (raw confluent-kafka)", "producer")
    row("database ceiling (raw psycopg claim+delete, 500/batch)", "database")
    for key, (label, *_how) in RELAYS.items():
        row(label, key)
    best = max(RELAYS, key=lambda k: med[k])
    row("Debezium 3.6 PostgreSQL connector + Outbox Event Router (Connect standalone)", "debezium")
    if peer_status is None:
        row(f"faststream-outbox {peer_faststream.version()} relay (its defaults; {peer_rows:,} rows)", "peer")
    else:
        report.add("faststream-outbox relay", "-", "-", f"not run: {peer_status}")
    if txoutbox_status is None:
        row(f"txoutbox {peer_txoutbox.version()} relay (its defaults + LISTEN/NOTIFY; {peer_rows:,} rows)", "txoutbox")
    else:
        report.add("txoutbox relay", "-", "-", f"not run: {txoutbox_status}")
    report.notes.append(
        f"lower limit = {bound} ceiling, {limit:,.0f} events/s; targets: best relay configuration ≥ 0.7 × that,"
        f" 1 instance ≥ 0.5 ×, ahead of the peers. Best here: {RELAYS[best][0]}, {med[best] / limit:.2f} ×;"
        f" 1 instance {med['relay1'] / limit:.2f} ×"
    )
    report.data = {
        "rows": rows,
        "rounds": rounds,
        "samples": samples,
        "median": med,
        "lower_limit": limit,
        "lower_limit_is": bound,
        "relay1_ratio": med["relay1"] / limit,
        "relay2_ratio": med["relay2"] / limit,
        "relay1_b2000_ratio": med["relay1_b2000"] / limit,
        "best": best,
        "best_ratio": med[best] / limit,
        "debezium_ratio": med["debezium"] / limit,
        "peer_status": peer_status or "ran",
        "txoutbox_status": txoutbox_status or "ran",
        "peer_rows": peer_rows,
    }
    return report
