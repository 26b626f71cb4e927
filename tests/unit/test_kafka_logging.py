"""librdkafka's lines and errors through logging, rate-limited; refused credentials remembered (no Kafka needed)."""

from __future__ import annotations

import logging
import threading

import pytest
from confluent_kafka import KafkaError

from kafkaguard.errors import AuthenticationError, KafkaguardError
from kafkaguard.transports.kafka_logging import KafkaClientLog, RateLimiter, client_logging, short_reason

CONNECT_FAILED = (
    "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused (after 0ms in state CONNECT)"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    """The test's own lines at ``level`` and above: written by this thread. A librdkafka client an
    earlier test of the session left behind may still log from its own thread, into the same
    loggers (CI once saw a fourth "unreachable" line here from such a client)."""
    me = threading.get_ident()
    return [r.getMessage() for r in caplog.records if r.levelno >= level and r.thread == me]


def test_the_rate_limiter_lets_one_event_per_interval_through_and_counts_the_rest() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10.0, clock)
    assert limiter.allow("a") == 0
    assert [limiter.allow("a") for _ in range(5)] == [None] * 5
    assert limiter.allow("b") == 0  # keys are independent
    clock.now += 10.0
    assert limiter.allow("a") == 5
    assert limiter.allow("a") is None


def test_an_unreachable_broker_gives_one_line_per_interval_naming_address_and_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    log = KafkaClientLog("127.0.0.1:1", "consumer", interval=10.0, clock=clock)
    caplog.set_level(logging.DEBUG)
    for second in range(25):  # librdkafka retries ~20 times a second: 500 errors and 500 FAIL lines
        clock.now = 100.0 + second
        for _ in range(20):
            log.error(KafkaError(KafkaError._TRANSPORT, CONNECT_FAILED))
            log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", f"[thrd:x]: {CONNECT_FAILED}")
    warnings = lines(caplog, logging.WARNING)
    assert len(warnings) == 3, warnings  # t = 0, 10, 20 s
    assert warnings[0] == (
        "Kafka at 127.0.0.1:1 is unreachable for the consumer (Connect to ipv4#127.0.0.1:1 failed: Connection "
        "refused); waiting and retrying"
    )
    assert warnings[1].endswith("; 200 failed attempts since the last line")
    assert log.unreachable_now() == "Connect to ipv4#127.0.0.1:1 failed: Connection refused"
    clock.now += 11
    assert log.unreachable_now() is None  # nothing said so for a whole interval: reachable again


def test_other_librdkafka_lines_keep_their_level_and_are_limited_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    log = KafkaClientLog("b:9092", "producer", interval=10.0, clock=clock)
    caplog.set_level(logging.DEBUG, logger="kafkaguard.librdkafka")
    for n in range(50):  # alike but for numbers: one kind
        log.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "rdkafka#producer-1", f"[thrd:b]: Timed out {n} requests")
    log.log(logging.INFO, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "[thrd:app]: a different line")
    clock.now += 10
    log.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "rdkafka#producer-1", "[thrd:b]: Timed out 3 requests")
    # This thread's records only: a client an earlier test left behind logs from its own thread
    # into the same logger (CI once saw its DEBUG "Connect ... failed" line here; see lines()).
    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.thread == threading.get_ident()]
    assert records == [
        (logging.WARNING, "producer REQTMOUT: Timed out 0 requests"),
        (logging.INFO, "producer CONFWARN: a different line"),
        (logging.WARNING, "producer REQTMOUT: Timed out 3 requests (49 similar lines held back)"),
    ]


def test_refused_credentials_are_remembered_and_raised_as_one_line(caplog: pytest.LogCaptureFixture) -> None:
    log, settings = client_logging("sasl_plaintext://b:9092", "relay")
    assert settings["logger"] is log and callable(settings["error_cb"])
    log.raise_if_refused()  # nothing refused yet
    text = "sasl_plaintext://b:9092/bootstrap: SASL authentication error: Authentication failed (after 5ms in state X)"
    for _ in range(3):
        settings["error_cb"](KafkaError(KafkaError._AUTHENTICATION, text))
    assert len(lines(caplog, logging.ERROR)) == 1
    with pytest.raises(AuthenticationError) as caught:
        log.raise_if_refused()
    assert isinstance(caught.value, KafkaguardError)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Kafka at sasl_plaintext://b:9092 refused the credentials (SASL authentication error")


def test_a_client_callback_of_its_own_still_runs() -> None:
    seen: list[int] = []
    log, settings = client_logging("b:9092", "producer", on_error=lambda e: seen.append(e.code()))
    settings["error_cb"](KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert seen == [KafkaError._ALL_BROKERS_DOWN]
    assert log.last_unreachable == "1/1 brokers are down"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (CONNECT_FAILED, "Connect to ipv4#127.0.0.1:1 failed: Connection refused"),
        ("[thrd:main]: GroupCoordinator: Disconnected", "GroupCoordinator: Disconnected"),
        ("1/1 brokers are down", "1/1 brokers are down"),
    ],
)
def test_short_reason(text: str, reason: str) -> None:
    assert short_reason(text) == reason


def test_after_refused_credentials_the_brokers_are_not_called_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    log = KafkaClientLog("b:9092", "relay")
    sasl = (
        "sasl_plaintext://b:9092/bootstrap: SASL PLAIN mechanism handshake failed: Broker: ... (after 0ms in state X)"
    )
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", f"[thrd:x]: {sasl}")
    log.error(KafkaError(KafkaError._AUTHENTICATION, sasl))
    log.error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    said = lines(caplog, logging.INFO)
    assert said == [
        "Kafka at b:9092 refused the credentials (SASL PLAIN mechanism handshake failed: Broker: ...) "
        "on its PLAINTEXT listener"
    ]
