"""Markdown for the API reference: a mkdocstrings block for every name in ``kafkaguard.__all__``.

Names are grouped by the part of the package that defines them (publishing, consuming, ...), so a
name added to ``__all__`` appears on the next build without editing the page; a name from a part not
listed in :data:`SECTIONS` lands under "Other".
"""

from __future__ import annotations

import importlib
from typing import Any

import kafkaguard

SECTIONS: tuple[tuple[str, str], ...] = (
    ("kafkaguard.envelope", "Events"),
    ("kafkaguard.settings", "Settings"),
    ("kafkaguard.publisher", "Publishing"),
    ("kafkaguard.relay", "Relay"),
    ("kafkaguard.consumer", "Consuming and restoring"),
    ("kafkaguard.restore", "Consuming and restoring"),
    ("kafkaguard.db", "Database"),
    ("kafkaguard.testing", "Testing"),
    ("kafkaguard.errors", "Errors"),
)
"""Module prefix -> section title, in page order (the first matching prefix wins)."""

OTHER = "Other"


def public_names() -> list[str]:
    """The documented names: ``__all__`` without dunder names such as ``__version__``."""
    return [name for name in kafkaguard.__all__ if not name.startswith("__")]


def defining_module(name: str) -> str:
    """The module a public name comes from (its ``__module__``, else where the lazy import reads it)."""
    value: Any = getattr(kafkaguard, name)
    module = getattr(value, "__module__", None)
    if isinstance(module, str) and module.startswith("kafkaguard"):
        return module
    lazy: dict[str, str] = getattr(kafkaguard, "_LAZY", {})
    return lazy.get(name, "kafkaguard")


def section_of(module: str) -> str:
    for prefix, title in SECTIONS:
        if module == prefix or module.startswith(prefix + "."):
            return title
    return OTHER


def grouped() -> dict[str, list[str]]:
    """Section title -> public names, sections in page order, names in ``__all__`` order."""
    order = [title for _, title in SECTIONS] + [OTHER]
    groups: dict[str, list[str]] = {title: [] for title in dict.fromkeys(order)}
    for name in public_names():
        groups[section_of(defining_module(name))].append(name)
    return {title: names for title, names in groups.items() if names}


def render() -> str:
    lines: list[str] = []
    for title, names in grouped().items():
        lines += [f"## {title}", ""]
        for name in names:
            lines += [f"::: kafkaguard.{name}", ""]
    return "\n".join(lines)


def resolve(dotted: str) -> Any:
    """The object a dotted path names (``kafkaguard.errors.ConfigurationError``), or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            value = getattr(value, attr, None)
            if value is None:
                return None
        return value
    return None
