"""Hide secrets in values shown to people: settings reports, error messages, log lines.

- a value under a key that names a secret (``password``, ``passwd``, ``secret``, ``token``,
  ``credential``, ``api_key``, librdkafka's ``ssl.key.pem`` and ``sasl.oauthbearer.config``) becomes
  :data:`MASK`;
- in any other text, the password of a URL (``scheme://user:password@host``) and the value of a
  secret-looking query parameter (``?password=...``) become :data:`MASK`; user, host, port and
  database stay visible, so a report still says where a URL points;
- a :class:`pydantic.SecretStr` / ``SecretBytes`` is always masked;
- a key ending in ``_file`` / ``_files`` (``http_secret_files``) names where a secret is, not the
  secret: its paths stay visible; so does a key ending in ``_callback`` (``oauth_token_callback``:
  the import path of the function that fetches a token, not a token); an empty value (``""``,
  ``[]``) stays visible under any key, so a report tells an unset secret from a set one;
- mappings and sequences are masked element by element.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import SecretBytes, SecretStr

MASK = "***"

_SECRET_KEY = re.compile(r"password|passwd|secret|token|credential|api[._-]?key|key\.pem|oauthbearer\.config", re.I)
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s]*:)[^@/?#\s]*(?P<at>@)")
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&][^=&#\s]*(?:password|passwd|secret|token|api[._-]?key)[^=&#\s]*=)[^&#\s]*", re.I
)


def is_secret_key(key: str) -> bool:
    """True when a setting or parameter named ``key`` holds a secret (not a file naming one)."""
    return bool(_SECRET_KEY.search(key)) and not key.endswith(("_file", "_files", "_callback"))


def mask_text(text: str) -> str:
    """``text`` with URL passwords and secret query parameters replaced by :data:`MASK`."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)


def mask(value: Any, key: str = "") -> Any:
    """``value`` (found under ``key``) with every secret in it replaced by :data:`MASK`."""
    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if key and is_secret_key(key) and value not in (None, "", b"") and not _empty_collection(value):
        return MASK
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask(v, key) for v in value)
    return value


def _empty_collection(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and not value
