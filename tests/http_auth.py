"""Signed requests for the tests of the ``http`` mode's receiving endpoint (kafkaguard.http_signing).

client = TestClient(api)
client.auth = Signing()          # every request signed with SECRET, as HttpPublisher signs
"""

from __future__ import annotations

import time
from collections.abc import Generator

import httpx
from pydantic import SecretStr

from kafkaguard.consumer.settings import ConsumerSettings
from kafkaguard.http_signing import HttpAuth, RequestAuth

SECRET = "tests-http-secret-0123456789abcdef"
"""The secret the tests' receiving endpoints accept."""

RECEIVER = ConsumerSettings(http_secrets=(SecretStr(SECRET),))
"""Consumer settings whose endpoint accepts requests signed with :data:`SECRET`."""


class Signing(httpx.Auth):
    """An httpx auth that signs each request's body with ``secret`` at the current time (or ``at``)."""

    requires_request_body = True

    def __init__(self, secret: str = SECRET, *, at: float | None = None) -> None:
        self._auth = RequestAuth(HttpAuth.HMAC, (secret.encode(),))
        self._at = at

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._auth.headers(request.content, time.time() if self._at is None else self._at))
        yield request
