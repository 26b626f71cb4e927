"""The DLQ copier produces through the producer port: with the in-memory one, no Kafka is needed."""

from __future__ import annotations

import logging

import pytest

from kafkaguard import headers as H
from kafkaguard.consumer.dlq import DlqCopier
from kafkaguard.consumer.records import Record
from kafkaguard.testing import MemoryProducer

ROW = {"reason": "handler_error", "error_class": "builtins.ValueError", "error_message": "bad total"}


def test_the_copy_keeps_key_value_and_headers_and_says_where_it_came_from() -> None:
    producer = MemoryProducer()
    record = Record("orders", 2, 41, b"o-1", b'{"total": -1}', [("event_id", b"e-1"), ("empty", None)])
    DlqCopier(producer=producer)(record, ROW)
    [copy] = producer.messages("orders.dlq")
    assert (copy.key, copy.value) == (b"o-1", b'{"total": -1}')
    assert copy.header("event_id") == b"e-1" and copy.header("empty") is None
    assert copy.header(H.DLQ_ORIGINAL_PARTITION) == b"2" and copy.header(H.DLQ_ORIGINAL_OFFSET) == b"41"
    assert copy.header(H.DLQ_EXCEPTION_CLASS) == b"builtins.ValueError"


def test_a_refused_copy_is_logged_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    producer = MemoryProducer(max_message_bytes=500)
    record = Record("orders", 0, 7, b"o-2", b"x" * 1_000)
    with caplog.at_level(logging.ERROR, logger="kafkaguard.consumer.dlq"):
        DlqCopier(producer=producer)(record, ROW)
    assert producer.messages() == []
    assert "DLQ copy failed" in caplog.text and "MSG_SIZE_TOO_LARGE" in caplog.text


def test_a_copier_needs_a_producer_or_a_bootstrap() -> None:
    with pytest.raises(TypeError, match="producer or the bootstrap"):
        DlqCopier()
