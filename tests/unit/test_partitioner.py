"""kafkaguard's murmur2 is Kafka's: the cases of Kafka's own UtilsTest.testMurmur2.

The contract suite (tests/contract/test_producer_contract.py) then checks that the real producer
and the in-memory one put keys on ``partition_for``'s partition on a real multi-partition topic.
"""

from kafkaguard.transports.partitioner import murmur2, partition_for


def test_murmur2_matches_kafkas_own_test_vectors() -> None:
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107


def test_partition_is_the_positive_hash_modulo_the_count() -> None:
    assert partition_for(b"21", 7) == (-973932308 & 0x7FFFFFFF) % 7
    assert {partition_for(f"k{n}".encode(), 5) for n in range(100)} == set(range(5))
    assert partition_for(b"anything", 1) == 0
