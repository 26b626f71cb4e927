"""A key lands on the partition Java's default partitioner picks, whichever kafkaguard producer sends it.

Debezium, Kafka Connect and Java services hash keys with murmur2; if kafkaguard hashed differently,
the events of one aggregate sent by kafkaguard's relay and by Debezium (or a Java service) would sit
on different partitions and lose their order.
"""

from __future__ import annotations

import uuid

from kafkaguard.transports.kafka_admin import delete_topics, ensure_topics
from kafkaguard.transports.kafka_delivery import DeliveryProducer
from kafkaguard.transports.kafka_producer import SyncProducer


def murmur2(key: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (a signed 32-bit result, as in Java)."""
    m, r = 0x5BD1E995, 24
    h = (0x9747B28C ^ len(key)) & 0xFFFFFFFF
    whole = len(key) // 4 * 4
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    tail = key[whole:]
    if len(tail) >= 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h ^= tail[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def java_partition(key: bytes, partitions: int) -> int:
    """``Utils.toPositive(Utils.murmur2(key)) % partitions``: the Java client's partition for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def test_murmur2_matches_kafkas_own_test_vectors() -> None:
    # The cases of Kafka's UtilsTest.testMurmur2, so the test below compares against Java itself.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_every_producer_puts_a_key_where_java_would(kafka_bootstrap: str) -> None:
    topic = f"kg-part-{uuid.uuid4().hex[:8]}"
    partitions = 5
    ensure_topics(kafka_bootstrap, [topic], partitions=partitions)
    keys = [f"order-{n}".encode() for n in range(60)] + [b"k0", b"k1", b"x" * 300, "ключ".encode()]
    sync = SyncProducer(kafka_bootstrap, timeout=30)
    delivery = DeliveryProducer(kafka_bootstrap, message_timeout=30)
    try:
        for key in keys:
            want = java_partition(key, partitions)
            assert sync.send(topic, b"{}", key=key).partition == want, key
            assert delivery.send(topic, b"{}", key=key).partition == want, key
    finally:
        delivery.close()
        sync.close()
        delete_topics(kafka_bootstrap, [topic])
