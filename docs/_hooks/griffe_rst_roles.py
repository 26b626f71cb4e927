"""Griffe extension: docstrings use Sphinx roles (``:class:`~kafkaguard.errors.ConfigurationError```);
Markdown has none. Each role becomes a link to the API reference when it names a public name of
``kafkaguard`` (the same object as ``kafkaguard.X``), and inline code otherwise — never a broken link.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import griffe

sys.path.insert(0, str(Path(__file__).parent))

import api_reference

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")


def _public_target(target: str) -> str | None:
    """``kafkaguard.X`` when ``target`` (bare or dotted) is the object exported as ``X``; else None."""
    import kafkaguard

    name = target.rsplit(".", 1)[-1]
    if name not in api_reference.public_names():
        return None
    if "." not in target:
        return f"kafkaguard.{name}"
    value = api_reference.resolve(target)
    return f"kafkaguard.{name}" if value is not None and value is getattr(kafkaguard, name) else None


def _replace(match: re.Match[str]) -> str:
    short, target = match.groups()
    target = target.strip().removesuffix("()")
    text = target.rsplit(".", 1)[-1] if short else target
    public = _public_target(target)
    return f"[`{text}`][{public}]" if public else f"`{text}`"


def convert(text: str) -> str:
    """``text`` with every Sphinx role turned into Markdown."""
    return ROLE.sub(_replace, text)


class SphinxRoles(griffe.Extension):
    """Rewrite roles in every docstring once the object tree is complete."""

    def on_object(self, *, obj: Any, loader: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
