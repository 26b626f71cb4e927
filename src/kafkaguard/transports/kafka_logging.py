"""librdkafka's log lines and client errors through Python logging, rate-limited.

Without this, a client that cannot reach its broker writes a raw ``%3|...|FAIL|`` line to stderr
on every reconnect attempt (about 20 a second: 741 lines in 25 s for one wrong bootstrap address),
outside the application's logging. :class:`KafkaClientLog` is given to a client twice, as its
``logger`` (confluent-kafka calls ``.log(level, fmt, *args)``, served from ``poll``) and as its
``error_cb`` (:meth:`KafkaClientLog.error`), through :func:`client_logging`:

- a broker that cannot be reached gives one WARNING per ``interval`` on ``kafkaguard.kafka``,
  naming the bootstrap servers and the last reason, and how many attempts failed since the last
  line; librdkafka's own connect-failure lines, which say the same, go to DEBUG;
- every other librdkafka line reaches ``kafkaguard.librdkafka`` at its own level, at most once per
  ``interval`` for lines that differ only in numbers (a suppressed count is added to the next);
- an authentication failure (SASL) is logged (once per interval) and remembered in
  :attr:`KafkaClientLog.auth_failure`: the owner of the client raises
  :class:`~kafkaguard.errors.AuthenticationError` from it (see :meth:`KafkaClientLog.raise_if_refused`),
  since waiting does not fix a password; the "brokers down" that follows is not called an outage.

Thread-safe: librdkafka serves callbacks from whichever thread polls. Client settings are never logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError

from kafkaguard.errors import AuthenticationError
from kafkaguard.masking import mask_text

LOG_INTERVAL = 10.0
"""Seconds between two lines of one kind (the "unreachable" line, or librdkafka lines alike but for numbers)."""

MAX_KINDS = 1000
"""Kinds of line a :class:`RateLimiter` remembers at most (librdkafka lines name topics and brokers)."""

UNREACHABLE = frozenset({KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE})
"""Client errors that mean "the broker cannot be reached now": an outage, retried by librdkafka."""

REFUSED = frozenset({KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED})
"""Client errors that mean "the broker refused the credentials": fatal, never retried."""

_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")
_NUMBERS = re.compile(r"\d+")
_ATTEMPT_DETAIL = re.compile(r"\s*\(after \d+ms in state \w+(, \d+ identical error\(s\) suppressed)?\)")
_CONNECT_FAILURE = ("Connect to ", "Failed to resolve", "Connection refused", "brokers are down")
_REFUSED_MARKERS = (
    "SASL authentication",
    "SASL PLAIN",
    "SASL SCRAM",
    "SASL OAUTHBEARER",
    "Authentication failed",
)
# A TLS handshake that fails on a certificate (the broker's is untrusted, the broker refuses ours)
# is as lasting as a wrong password. One that fails because the connection dropped ("SSL handshake
# failed: Disconnected: connection reset by peer") is not: a network cut or a broker restart during
# the handshake looks exactly like that, and treating it as fatal stopped every worker of the
# secured chaos suite's network-cut run (939 events never applied). It is an outage, retried.
_CERTIFICATE_MARKERS = ("certificate", "unknown ca", "verify failed", "alert bad", "alert handshake failure")
# TLS 1.3 brokers reject a client certificate after the handshake: the client reads an alert
# ("Receive failed: ... ssl/tls alert certificate unknown: SSL alert number 46"), reported as a
# transport error. An alert about a certificate is a refusal whatever the error code says.
_CERTIFICATE_ALERTS = ("alert certificate", "alert unknown ca", "alert bad certificate", "certificate verify failed")


def is_refusal(code: int, text: str) -> bool:
    """Whether a client error means the broker refused our credentials (fatal) rather than an outage."""
    if code in REFUSED or any(marker in text for marker in _REFUSED_MARKERS):
        return True
    lowered = text.lower()
    if any(alert in lowered for alert in _CERTIFICATE_ALERTS):
        return True
    return "ssl handshake failed" in lowered and any(marker in lowered for marker in _CERTIFICATE_MARKERS)


def security_of(config: Mapping[str, Any] | None) -> str:
    """``PROTOCOL`` or ``PROTOCOL/MECHANISM`` of client settings, for lines about the listener (never a secret)."""
    config = config or {}
    protocol = str(config.get("security.protocol", "PLAINTEXT")).upper()
    mechanism = config.get("sasl.mechanism") if protocol.startswith("SASL") else None
    return f"{protocol}/{mechanism or 'GSSAPI'}" if protocol.startswith("SASL") else protocol


kafka_log = logging.getLogger("kafkaguard.kafka")
librdkafka_log = logging.getLogger("kafkaguard.librdkafka")


class RateLimiter:
    """Let one event per ``interval`` seconds through for each key, counting the ones held back (pure
    apart from the injected ``clock``)."""

    def __init__(self, interval: float = LOG_INTERVAL, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self._clock = clock
        self._last: dict[object, float] = {}
        self._held: dict[object, int] = {}
        self._lock = threading.Lock()

    def allow(self, key: object) -> int | None:
        """None when the event for ``key`` is held back; else how many were held back since the last one."""
        now = self._clock()
        with self._lock:
            if len(self._last) >= MAX_KINDS and key not in self._last:
                self._last.clear()  # bounded memory; at worst a kind is said once more
                self._held.clear()
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)


def short_reason(text: str) -> str:
    """A librdkafka message without its thread tag, ``host:port/id:`` prefix and attempt detail."""
    text = _ATTEMPT_DETAIL.sub("", _THREAD.sub("", text))
    head, sep, rest = text.partition(": ")
    return rest if sep and "/" in head and " " not in head else text


class KafkaClientLog:
    """The ``logger`` and ``error_cb`` of one Kafka client (see the module docstring).

    ``bootstrap``: the client's bootstrap servers (named in the "unreachable" line); ``client``: what
    the client is for ("consumer", "relay producer", ...); ``interval``: seconds between lines of one
    kind (default :data:`LOG_INTERVAL`); ``clock``: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        bootstrap: str,
        client: str,
        *,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        security: str = "PLAINTEXT",
    ) -> None:
        self.bootstrap = bootstrap
        self.client = client
        self.security = security
        """The listener's protocol and mechanism as :func:`security_of` says them."""
        self.auth_failure: str | None = None
        """librdkafka's text of the first authentication failure, once one happened."""
        self.last_unreachable: str | None = None
        """The reason of the latest "cannot reach the broker" error (None before the first)."""
        self._last_unreachable_at: float | None = None
        self._clock = clock
        self._limiter = RateLimiter(interval, clock)

    # confluent-kafka's logger protocol: log(level, "%s [%s] %s", facility, client name, message)
    def log(self, level: int, fmt: str, *args: Any) -> None:
        """One librdkafka log line (see the module docstring for what is kept)."""
        facility = str(args[0]) if args else ""
        message = _THREAD.sub("", str(args[-1])) if args else fmt
        if facility == "FAIL" and (
            any(marker in message for marker in _CONNECT_FAILURE) or is_refusal(KafkaError.NO_ERROR, message)
        ):
            librdkafka_log.debug("%s %s: %s", self.client, facility, message)
            return
        held = self._limiter.allow(("log", facility, _NUMBERS.sub("#", message)))
        if held is None:
            return
        more = f" ({held} similar lines held back)" if held else ""
        librdkafka_log.log(level, "%s %s: %s%s", self.client, facility, message, more)

    def error(self, error: KafkaError) -> None:
        """The client's ``error_cb``: unreachable brokers, refused credentials, other client errors."""
        code = error.code()
        text = str(error.str())
        if is_refusal(code, text):
            self.auth_failure = self.auth_failure or short_reason(text)
            held = self._limiter.allow("refused")
            if held is not None:
                more = f"; {held + 1} refusals since the last line" if held else ""
                kafka_log.error(
                    "Kafka at %s refused the credentials (%s) on its %s listener%s",
                    self.bootstrap,
                    mask_text(short_reason(text)),
                    self.security,
                    more,
                )
            return
        if code in UNREACHABLE:
            if self.auth_failure is not None:  # the brokers are "down" because they refused us: not an outage
                librdkafka_log.debug("%s: %s (after refused credentials)", self.client, text)
                return
            if code != KafkaError._ALL_BROKERS_DOWN or self.last_unreachable is None:
                self.last_unreachable = short_reason(text)
            self._last_unreachable_at = self._clock()
            self.report_unreachable()
            return
        held = self._limiter.allow(("error", code))
        if held is not None:
            level = logging.ERROR if error.fatal() else logging.WARNING
            more = f" ({held} more since the last line)" if held else ""
            kafka_log.log(level, "Kafka %s error: %s: %s%s", self.client, error.name(), text, more)

    def report_unreachable(self, reason: str | None = None) -> None:
        """Say (at most once per interval) that the brokers cannot be reached, with ``reason`` or the last one."""
        if reason is not None:
            self.last_unreachable = reason
        held = self._limiter.allow("unreachable")
        if held is None:
            return
        more = f"; {held + 1} failed attempts since the last line" if held else ""
        kafka_log.warning(
            "Kafka at %s is unreachable for the %s (%s); waiting and retrying%s",
            self.bootstrap,
            self.client,
            self.last_unreachable or "no answer",
            more,
        )

    def unreachable_now(self) -> str | None:
        """Why the brokers cannot be reached, if a client error said so within the last interval."""
        at = self._last_unreachable_at
        if at is None or self._clock() - at > self._limiter.interval:
            return None
        return self.last_unreachable

    def raise_if_refused(self) -> None:
        """Raise :class:`AuthenticationError` once Kafka refused the credentials."""
        if self.auth_failure is not None:
            raise AuthenticationError(
                f"Kafka at {self.bootstrap} refused the credentials ({mask_text(self.auth_failure)}) of the "
                f"{self.client} on its {self.security} listener: check kafka_security (protocol, sasl_mechanism, "
                "username, password; ca_location, certificate_location, key_location) or the producer / "
                "consumer_client overrides"
            )


def client_logging(
    bootstrap: str,
    client: str,
    *,
    on_error: Callable[[KafkaError], None] | None = None,
    config: Mapping[str, Any] | None = None,
) -> tuple[KafkaClientLog, dict[str, Any]]:
    """A :class:`KafkaClientLog` and the client settings that install it (``logger``, ``error_cb``).

    ``on_error``: a callback of the client's own, called after the log's for every client error;
    ``config``: the client's settings, whose protocol and mechanism its lines name.
    """
    log = KafkaClientLog(bootstrap, client, security=security_of(config))
    if on_error is None:
        return log, {"logger": log, "error_cb": log.error}

    def both(error: KafkaError) -> None:
        log.error(error)
        on_error(error)

    return log, {"logger": log, "error_cb": both}
