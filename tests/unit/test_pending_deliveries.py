"""``PendingDeliveries``: the outcome of one ``produce_all`` call, settled from two threads at once."""

from __future__ import annotations

import threading

from kafkaguard.errors import DeliveryTimeoutError, EventRejectedError
from kafkaguard.transports.ports import PendingDeliveries


def test_done_after_the_last_of_many_concurrent_settles_with_every_outcome_kept() -> None:
    n = 20_000
    pending = PendingDeliveries(["t"] * n, timeout=30)
    refused = EventRejectedError("too large", reason="MSG_SIZE_TOO_LARGE")

    def reports() -> None:  # the poll thread: acks for the even indexes
        for i in range(0, n, 2):
            pending.acked(i)

    thread = threading.Thread(target=reports)
    thread.start()
    for i in range(1, n, 2):  # the producing thread: refusals for the odd ones, at the same time
        pending.refuse(i, refused)
    thread.join()
    results = pending.wait()
    assert results[0::2] == [None] * (n // 2)
    assert results[1::2] == [refused] * (n // 2)
    assert pending.failures == n // 2
    assert pending.refused == list(range(1, n, 2))


def test_a_message_without_a_report_is_a_timeout_and_an_empty_batch_is_done_at_once() -> None:
    pending = PendingDeliveries(["a", "b"], timeout=0.01)
    pending.acked(0)
    results = pending.wait()
    assert results[0] is None and isinstance(results[1], DeliveryTimeoutError)
    assert PendingDeliveries([], timeout=30).wait() == []
