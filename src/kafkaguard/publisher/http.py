"""``http`` mode (dailyfeed's "feign"): POST the envelope to the consuming service synchronously.

Guarantee: as ``direct`` — an event the endpoint did not accept (4xx at once; 5xx or I/O error
after ``http_retries`` retries) is written to ``kafka_publisher_dead_letters`` in the caller's
transaction (source ``http``, topic = the event's Kafka topic, so a restore job can republish it);
if that write fails, the transaction is rolled back and PublishUnavailableError is raised.
httpx errors never leave this module.

Every request is authenticated as ``publish.http_auth`` says (:mod:`kafkaguard.http_signing`): by
default signed with the first of ``publish.http_secrets``, the timestamp taken at each attempt, so
a retry is signed afresh. A receiver that refuses it answers 401, which dead-letters the event like
any 4xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from kafkaguard.db.columns import PublishSource
from kafkaguard.envelope import Event
from kafkaguard.errors import EventRejectedError, KafkaUnavailableError, PublishError
from kafkaguard.http_signing import HttpAuth, RequestAuth
from kafkaguard.publisher.fallback import dead_letter_or_raise, dead_letter_or_raise_async
from kafkaguard.publisher.http_rules import Verdict, endpoint_for, retry_delay, verdict
from kafkaguard.publisher.settings import PublishSettings
from kafkaguard.stores.publisher_dead_letters import PostgresPublisherDeadLetters, PublisherDeadLetterWriter

logger = logging.getLogger(__name__)


def _failure(url: str, status: int | None, detail: str, attempts: int) -> PublishError:
    if status is not None and 400 <= status < 500:
        return EventRejectedError(f"{url} refused the event with HTTP {status}: {detail}")
    return KafkaUnavailableError(f"{url} did not accept the event after {attempts} attempts: {detail}")


def body_of(event: Event) -> bytes:
    """The exact bytes POSTed (and signed) for ``event``: compact UTF-8 JSON, as httpx's ``json=`` writes it."""
    return json.dumps(event.to_json(), ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


class HttpPublisher:
    """POST events to their endpoints with retries; fall back to a dead letter. Share one per process.

    ``transport`` / ``async_transport``: httpx transports (tests pass in-memory ones).
    ``delay``: seconds to wait before attempt ``n + 1`` after attempt ``n`` failed (default
    :func:`~kafkaguard.publisher.http_rules.retry_delay`: 0.2 s doubling, at most 2 s; tests pass 0).
    ``dead_letters``: where refused events go (default: the PostgreSQL table, in the caller's session).

    Raises :class:`~kafkaguard.errors.ConfigurationError` when ``settings`` send events in http mode
    and authenticate requests (``http_auth``, by default ``hmac``) but give no secret or token.
    """

    def __init__(
        self,
        settings: PublishSettings,
        *,
        for_aggregate: Callable[[str], str],
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        delay: Callable[[int], float] = retry_delay,
        dead_letters: PublisherDeadLetterWriter | None = None,
    ) -> None:
        self.settings = settings
        self.delay = delay
        self.dead_letters: PublisherDeadLetterWriter = dead_letters or PostgresPublisherDeadLetters()
        self.for_aggregate = for_aggregate
        # Credentials are only demanded when some rule uses http mode: every Publisher builds one of these.
        self._auth = settings.http_request_auth() if settings.uses_http() else _credentials_if_any(settings)
        self._client = httpx.Client(timeout=settings.http_timeout, transport=transport)
        self._async_transport = async_transport

    def deliver(self, event: Event) -> None:
        """POST ``event`` until the contract says done; raise EventRejectedError or KafkaUnavailableError."""
        url = endpoint_for(self.settings, event)
        attempt = 0
        while True:
            attempt += 1
            status, detail = self._attempt(url, event)
            step = verdict(status, attempt, self.settings.http_retries)
            if step is Verdict.DONE:
                return
            if step is Verdict.REJECTED:
                raise _failure(url, status, detail, attempt)
            time.sleep(self.delay(attempt))

    def _request(self, event: Event) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt (signed now)."""
        body = body_of(event)
        return body, {"Content-Type": "application/json", **self._auth.headers(body, time.time())}

    def _attempt(self, url: str, event: Event) -> tuple[int | None, str]:
        try:
            body, headers = self._request(event)
            response = self._client.post(url, content=body, headers=headers)
            return response.status_code, response.text[:200]
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def deliver_async(self, event: Event) -> None:
        """Asyncio form of :meth:`deliver` (httpx.AsyncClient; the loop is never blocked)."""
        url = endpoint_for(self.settings, event)
        async with httpx.AsyncClient(timeout=self.settings.http_timeout, transport=self._async_transport) as client:
            attempt = 0
            while True:
                attempt += 1
                try:
                    body, headers = self._request(event)
                    response = await client.post(url, content=body, headers=headers)
                    status, detail = response.status_code, response.text[:200]
                except httpx.HTTPError as exc:
                    status, detail = None, f"{type(exc).__name__}: {exc}"
                step = verdict(status, attempt, self.settings.http_retries)
                if step is Verdict.DONE:
                    return
                if step is Verdict.REJECTED:
                    raise _failure(url, status, detail, attempt)
                await asyncio.sleep(self.delay(attempt))

    def publish(self, session: Session, event: Event) -> bool:
        """Deliver in the caller's transaction; True if accepted, False if dead-lettered (or raise)."""
        try:
            self.deliver(event)
            return True
        except PublishError as exc:
            topic = self.for_aggregate(event.aggregate_type)
            dead_letter_or_raise(self.dead_letters, session, event, topic=topic, source=PublishSource.HTTP, error=exc)
            return False

    async def publish_async(self, session: AsyncSession, event: Event) -> bool:
        """Asyncio form of :meth:`publish`."""
        try:
            await self.deliver_async(event)
            return True
        except PublishError as exc:
            topic = self.for_aggregate(event.aggregate_type)
            await dead_letter_or_raise_async(
                self.dead_letters, session, event, topic=topic, source=PublishSource.HTTP, error=exc
            )
            return False

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()


def _credentials_if_any(settings: PublishSettings) -> RequestAuth:
    """The credentials the settings give, or none at all (no rule uses http mode, nothing is sent)."""
    given = settings.http_secrets or settings.http_secret_files or settings.http_tokens or settings.http_token_files
    return settings.http_request_auth() if given else RequestAuth(HttpAuth.NONE)
