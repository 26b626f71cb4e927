"""Load a service's handler registry from ``module:attribute`` for ``consume``, ``restore listener``
and ``dead-letters replay``, turning every import failure into a one-line ConfigurationError."""

from __future__ import annotations

from kafkaguard.consumer.registry import HandlerRegistry, load_registry


def load_handlers(spec: str | None, *, option: str = "--app") -> HandlerRegistry:
    """:func:`kafkaguard.consumer.registry.load_registry` (one loader for every command)."""
    return load_registry(spec, option=option)
