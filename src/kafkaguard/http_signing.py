"""Authentication of ``http`` mode requests: HMAC-SHA256 signatures, or bearer tokens (pure: no I/O but secret files).

Signature scheme (``http_auth = "hmac"``, the default)::

    X-Kafkaguard-Timestamp: 1764700000                  # unix seconds when the request was signed
    X-Kafkaguard-Signature: v1=<hex>[,v1=<hex>...]      # HMAC-SHA256(secret, timestamp + "." + body)

The signed message is the timestamp's ASCII digits, a ``.``, then the exact body bytes. A receiver
accepts a request when the timestamp is within ``replay_window`` seconds of its clock (either way)
and any ``v1=`` value matches any of its secrets; values of other schemes (``v2=``) are ignored, so a
later scheme can be rolled out beside this one. Several secrets make rotation possible: the
receivers list the new secret next to the old one, then the senders switch to the new one (a sender
signs with its first secret), then the old one is removed.

Bearer scheme (``http_auth = "bearer"``, for a gateway that adds or checks a token):
``Authorization: Bearer <token>``, accepted when it equals any listed token.

Guarantees: every comparison with a secret is constant-time (:func:`hmac.compare_digest`); a
:class:`RequestAuth`'s repr, a :class:`AuthFailure` and every :class:`~kafkaguard.errors.ConfigurationError`
raised here name settings and files, never a secret, a signature or a body. A signature binds the
body and the time, not the URL: a request captured in transit can be replayed within the window
(to the same or another receiver sharing the secret); the inbox's dedupe on ``event_id`` makes such a
replay a ``duplicate``. Use TLS against capture.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from kafkaguard.errors import ConfigurationError

TIMESTAMP_HEADER = "X-Kafkaguard-Timestamp"
SIGNATURE_HEADER = "X-Kafkaguard-Signature"
AUTHORIZATION_HEADER = "Authorization"
SCHEME = "v1"
DEFAULT_REPLAY_WINDOW = 300.0
"""Seconds a signed request stays acceptable (either side of the receiver's clock)."""
MIN_SECRET_LENGTH = 16
"""Shortest secret or token accepted: a short one can be guessed offline from one signed request."""
MAX_SIGNATURES = 8
"""Most ``v1=`` values looked at in one header: bounds the work an unauthenticated request causes."""
_MAX_TIMESTAMP_DIGITS = 12


class HttpAuth(StrEnum):
    """How ``http`` mode requests are authenticated."""

    HMAC = "hmac"  # signed body and timestamp (X-Kafkaguard-Signature)
    BEARER = "bearer"  # Authorization: Bearer <token>
    NONE = "none"  # no authentication: an explicit opt-out, anyone who reaches the endpoint can apply events


class AuthFailure(StrEnum):
    """Why a request was refused (the 401 body's ``reason``; carries nothing of the request)."""

    MISSING_SIGNATURE = "missing_signature"
    BAD_TIMESTAMP = "bad_timestamp"
    STALE_TIMESTAMP = "stale_timestamp"
    BAD_SIGNATURE = "bad_signature"
    MISSING_TOKEN = "missing_token"  # noqa: S105 - a reason, not a token
    BAD_TOKEN = "bad_token"  # noqa: S105 - a reason, not a token


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``timestamp + "." + body`` under ``secret``."""
    return hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def _ascii(text: str) -> bytes | None:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:
        return None


def _timestamp(text: str) -> int | None:
    """``text`` as unix seconds: ASCII digits only (no sign, space or ``_``, which int() would accept)."""
    text = text.strip()
    if not text or len(text) > _MAX_TIMESTAMP_DIGITS or not (text.isascii() and text.isdigit()):
        return None
    return int(text)


@dataclass(frozen=True, repr=False)
class RequestAuth:
    """A receiver's or sender's credentials in one scheme; build with :func:`request_auth`.

    ``keys``: the secrets (hmac) or tokens (bearer), current first, as bytes. Never printed.
    """

    mode: HttpAuth
    keys: tuple[bytes, ...] = field(default=())
    replay_window: float = DEFAULT_REPLAY_WINDOW

    def __repr__(self) -> str:
        return f"RequestAuth(mode={self.mode.value!r}, keys={len(self.keys)}, replay_window={self.replay_window})"

    def headers(self, body: bytes, now: float) -> dict[str, str]:
        """The headers that authenticate ``body`` sent at ``now`` (unix seconds), with the first key."""
        if self.mode is HttpAuth.NONE or not self.keys:
            return {}
        if self.mode is HttpAuth.BEARER:
            return {AUTHORIZATION_HEADER: f"Bearer {self.keys[0].decode('ascii')}"}
        timestamp = int(now)
        return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"{SCHEME}={sign(self.keys[0], timestamp, body)}"}

    def check(
        self,
        body: bytes,
        now: float,
        *,
        timestamp: str | None = None,
        signature: str | None = None,
        authorization: str | None = None,
    ) -> AuthFailure | None:
        """None when the request (its body and header values) is authentic at ``now``, else why not.

        Reads nothing but its arguments; the body is only hashed, never parsed.
        """
        if self.mode is HttpAuth.NONE:
            return None
        if self.mode is HttpAuth.BEARER:
            return self._check_bearer(authorization)
        if not timestamp or not signature:
            return AuthFailure.MISSING_SIGNATURE
        when = _timestamp(timestamp)
        if when is None:
            return AuthFailure.BAD_TIMESTAMP
        if abs(now - when) > self.replay_window:
            return AuthFailure.STALE_TIMESTAMP
        presented = [
            value
            for part in signature.split(",")[:MAX_SIGNATURES]
            if (scheme_value := part.strip().partition("="))[0] == SCHEME
            and (value := _ascii(scheme_value[2].strip().lower())) is not None
        ]
        if not presented:
            return AuthFailure.MISSING_SIGNATURE
        for key in self.keys:
            expected = sign(key, when, body).encode("ascii")
            # Every presented value is compared (no short cut on the first mismatch), each in constant time.
            if any([hmac.compare_digest(expected, value) for value in presented]):
                return None
        return AuthFailure.BAD_SIGNATURE

    def _check_bearer(self, authorization: str | None) -> AuthFailure | None:
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return AuthFailure.MISSING_TOKEN
        presented = _ascii(token.strip())
        if presented is None:
            return AuthFailure.BAD_TOKEN
        if any([hmac.compare_digest(key, presented) for key in self.keys]):
            return None
        return AuthFailure.BAD_TOKEN


def _read_secret_file(path: Path, setting: str) -> str:
    """The secret in ``path`` without surrounding whitespace (a mounted Kubernetes Secret ends in a newline)."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise ConfigurationError(f"cannot read {setting} file {path}: {why}") from None
    if not text:
        raise ConfigurationError(f"{setting} file {path} is empty")
    return text


def _keys(values: Sequence[SecretStr], files: Sequence[Path], setting: str, *, token: bool) -> tuple[bytes, ...]:
    if values and files:
        raise ConfigurationError(f"give {setting} or {setting[:-1]}_files, not both (the first one listed is current)")
    texts = [v.get_secret_value() for v in values] or [_read_secret_file(p, f"{setting[:-1]}_files") for p in files]
    keys = []
    for n, text in enumerate(texts, 1):
        where = f"{setting}[{n}]" if values else f"{setting[:-1]}_files[{n}] ({files[n - 1]})"
        if len(text) < MIN_SECRET_LENGTH:
            raise ConfigurationError(f"{where} is shorter than {MIN_SECRET_LENGTH} characters")
        encoded = _ascii(text)
        if token and (encoded is None or not all(33 <= c < 127 for c in encoded)):
            raise ConfigurationError(f"{where} must be printable ASCII without spaces (a bearer token)")
        keys.append(text.encode("utf-8"))
    return tuple(keys)


def request_auth(
    mode: HttpAuth,
    *,
    secrets: Sequence[SecretStr] = (),
    secret_files: Sequence[Path] = (),
    tokens: Sequence[SecretStr] = (),
    token_files: Sequence[Path] = (),
    replay_window: float = DEFAULT_REPLAY_WINDOW,
    prefix: str,
) -> RequestAuth:
    """The credentials of ``mode``, files read now; ConfigurationError when ``mode`` has none or one is bad.

    ``prefix``: where the settings live (``consumer.http`` / ``publish.http``), named in the messages.
    """
    if mode is HttpAuth.NONE:
        return RequestAuth(mode, (), replay_window)
    if mode is HttpAuth.HMAC:
        keys = _keys(secrets, secret_files, f"{prefix}_secrets", token=False)
        wanted = f"{prefix}_secrets or {prefix}_secret_files"
    else:
        keys = _keys(tokens, token_files, f"{prefix}_tokens", token=True)
        wanted = f"{prefix}_tokens or {prefix}_token_files"
    if not keys:
        env = "KAFKAGUARD_" + wanted.split(" ")[0].upper().replace(".", "__")
        raise ConfigurationError(
            f'{prefix}_auth is "{mode.value}"{" (the default)" if mode is HttpAuth.HMAC else ""} but no credential '
            f"is set: set {wanted} "
            f'(environment {env}, a JSON list), or {prefix}_auth = "none" to accept unauthenticated requests'
        )
    return RequestAuth(mode, keys, replay_window)
