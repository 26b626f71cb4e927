"""MkDocs hook: fills the generated reference pages at build time.

A page holding one of the markers below gets the generated Markdown in its place:

- ``<!-- generate: settings -->``: every setting (:mod:`settings_reference`);
- ``<!-- generate: cli -->``: every command and option of ``kafkaguard`` (:mod:`cli_reference`);
- ``<!-- generate: api -->``: a mkdocstrings block per name of ``kafkaguard.__all__`` (:mod:`api_reference`);
- ``<!-- generate: metrics -->``: the metrics the workers count (:mod:`metrics_reference`).

The package is imported from this checkout's ``src/`` (the code the site documents). Anything the
generators find wrong (a setting without a description) is a warning: ``mkdocs build --strict`` fails.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1] / "src"), str(HERE)]

import api_reference  # noqa: E402
import cli_reference  # noqa: E402
import metrics_reference  # noqa: E402
import settings_reference  # noqa: E402

log = logging.getLogger("mkdocs.hooks.kafkaguard")


def _settings() -> str:
    reference = settings_reference.build()
    for where in reference.missing:
        log.warning("settings reference: %s has no description (add Field(description=...))", where)
    return settings_reference.render(reference)


GENERATORS: dict[str, Callable[[], str]] = {
    "<!-- generate: settings -->": _settings,
    "<!-- generate: cli -->": cli_reference.render,
    "<!-- generate: api -->": api_reference.render,
    "<!-- generate: metrics -->": metrics_reference.render,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    for marker, generate in GENERATORS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, generate())
    return markdown
