"""Who may change things: the operator token, the login session and the CSRF token (pure, no I/O).

- Reading needs nothing. Every state-changing request needs the operator token, either from the
  session cookie the login form sets or from an ``Authorization: Bearer <token>`` header, and a
  CSRF token bound to that session (the form's hidden field, or the ``X-CSRF-Token`` header;
  header clients get theirs from ``GET /api/csrf``). No token configured: every write is refused.
- The session cookie holds no secret: a random nonce and the operator's name, signed with a key
  drawn when the app starts (HMAC-SHA256), so a restart logs everyone out and a cookie from one
  console is worthless to another. The token is compared in constant time and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SESSION_COOKIE = "kafkaguard_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
BEARER_NONCE = "bearer"  # the session of header clients: one CSRF token per console run
MAX_NAME = 64


@dataclass(frozen=True)
class Operator:
    """An authenticated operator: the name given at login (for the audit log) and the session's nonce."""

    name: str
    nonce: str


@dataclass(frozen=True)
class Refusal:
    """A write refused: the HTTP status and the reason shown to the operator (never the token)."""

    status: int
    reason: str


class Guard:
    """Checks the operator token, signs sessions and CSRF tokens; one per app (its key is the app's)."""

    def __init__(self, token: str | None, key: bytes | None = None) -> None:
        self._token = token
        self._key = key or secrets.token_bytes(32)

    @property
    def writable(self) -> bool:
        """Whether any write can be authorised (an operator token is configured)."""
        return bool(self._token)

    def token_matches(self, candidate: str | None) -> bool:
        """Constant-time comparison of ``candidate`` with the operator token."""
        if not self._token or not candidate:
            return False
        return hmac.compare_digest(candidate.encode(), self._token.encode())

    def _sign(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def new_session(self, name: str) -> str:
        """A session cookie's value for operator ``name`` (call only after :meth:`token_matches`)."""
        nonce = secrets.token_hex(16)
        label = base64.urlsafe_b64encode(clean_name(name).encode()).decode()
        return f"{nonce}.{label}.{self._sign(nonce + '.' + label)}"

    def session(self, cookie: str | None) -> Operator | None:
        """The operator of a valid session cookie, or None."""
        if not cookie or cookie.count(".") != 2:
            return None
        nonce, label, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(nonce + "." + label)):
            return None
        try:
            name = base64.urlsafe_b64decode(label.encode()).decode()
        except ValueError:
            return None
        return Operator(name, nonce)

    def csrf_token(self, operator: Operator) -> str:
        """The CSRF token of ``operator``'s session."""
        return self._sign("csrf:" + operator.nonce)

    def authorise(
        self, *, cookie: str | None, authorization: str | None, csrf: str | None, actor: str | None = None
    ) -> Operator | Refusal:
        """The operator a write comes from, or why it is refused (401: no valid token, 403: bad CSRF)."""
        if not self.writable:
            return Refusal(403, "this console is read-only: no operator token is configured (console.operator_token)")
        operator = self.session(cookie)
        bearer = authorization[7:].strip() if authorization and authorization.lower().startswith("bearer ") else None
        if operator is None and self.token_matches(bearer):
            operator = Operator(clean_name(actor or "api"), BEARER_NONCE)
        if operator is None:
            return Refusal(401, "an operator token is needed: log in with the token (or send Authorization: Bearer)")
        if not csrf or not hmac.compare_digest(csrf, self.csrf_token(operator)):
            return Refusal(403, "the CSRF token is missing or wrong: reload the page and try again")
        return operator


def clean_name(name: str) -> str:
    """An operator name fit for the audit log: printable, at most :data:`MAX_NAME` characters."""
    printable = "".join(ch for ch in name if ch.isprintable()).strip()
    return printable[:MAX_NAME] or "operator"
