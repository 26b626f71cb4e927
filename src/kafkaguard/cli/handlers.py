"""Load a service's handler registry from ``module:attribute`` for ``consume``, ``restore listener``
and ``dead-letters replay``, turning every import failure into a one-line ConfigurationError."""

from __future__ import annotations

import importlib
from typing import Any

from kafkaguard.consumer.registry import HandlerRegistry
from kafkaguard.errors import ConfigurationError


def load_handlers(spec: str | None, *, option: str = "--app") -> HandlerRegistry:
    """Import ``module:attribute`` and return the HandlerRegistry it names (or its ``.registry``).

    Raises :class:`ConfigurationError` when ``spec`` is missing or malformed, the module cannot be
    imported (or fails while importing), or the attribute is not a registry.
    """
    if not spec:
        raise ConfigurationError(f"pass {option} module:registry (the consumer's handlers)")
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigurationError(f"expected module:attribute for {option}, got {spec!r} (e.g. myapp.handlers:registry)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} ({option} {spec}): {exc}; check PYTHONPATH") from exc
    except Exception as exc:  # the user's module raised while importing: say which and what
        raise ConfigurationError(
            f"importing {module_name!r} ({option} {spec}) failed: {type(exc).__name__}: {exc}"
        ) from exc
    obj: Any = getattr(module, attr, None)
    if obj is None:
        raise ConfigurationError(f"module {module_name!r} has no attribute {attr!r} ({option} {spec})")
    if not isinstance(obj, HandlerRegistry):
        obj = getattr(obj, "registry", obj)
    if not isinstance(obj, HandlerRegistry):
        raise ConfigurationError(
            f"{spec!r} is a {type(obj).__name__}, not a kafkaguard HandlerRegistry (nor has a .registry)"
        )
    return obj
