"""Kafka's default partitioner for keyed messages, as the Java client computes it (pure).

kafkaguard's producer is configured with librdkafka's ``murmur2_random`` (:mod:`.kafka_config`),
which is this function for keyed messages; the in-memory producer uses it directly, so a key lands on
the same partition in a test as on the real broker, and as with Debezium or a Java service.
"""

from __future__ import annotations

_M = 0x5BD1E995
_MASK32 = 0xFFFFFFFF


def murmur2(key: bytes) -> int:
    """Kafka's ``Utils.murmur2`` of ``key``: a signed 32-bit result, as in Java."""
    h = (0x9747B28C ^ len(key)) & _MASK32
    whole = len(key) - len(key) % 4
    for i in range(0, whole, 4):
        k = (int.from_bytes(key[i : i + 4], "little") * _M) & _MASK32
        k = ((k ^ (k >> 24)) * _M) & _MASK32
        h = ((h * _M) & _MASK32) ^ k
    tail = key[whole:]
    if len(tail) == 3:
        h ^= tail[2] << 16
    if len(tail) >= 2:
        h ^= tail[1] << 8
    if tail:
        h = ((h ^ tail[0]) * _M) & _MASK32
    h = ((h ^ (h >> 13)) * _M) & _MASK32
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """``Utils.toPositive(Utils.murmur2(key)) % partitions``: the Java client's partition of ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
