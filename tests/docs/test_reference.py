"""The generated reference pages cover everything: every setting, every command, every public name."""

from __future__ import annotations

import sys
from pathlib import Path

import kafkaguard
from kafkaguard.settings import KafkaguardSettings
from kafkaguard.settings_schema import children, setting_paths
from kafkaguard.settings_sources import dotted, env_name

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "docs" / "_hooks"))

import api_reference
import cli_reference
import settings_reference
from griffe_rst_roles import convert


def _leaf_paths() -> set[tuple[str, ...]]:
    """Settable paths that are single values or mappings (tables of models are expanded into their fields)."""
    from kafkaguard.settings_schema import annotation_at

    return {
        p
        for p in setting_paths(KafkaguardSettings)
        if not isinstance(children(annotation_at(KafkaguardSettings, p)), dict)
    }


def test_every_setting_is_in_the_settings_reference_with_its_variable_and_a_description() -> None:
    reference = settings_reference.build()
    text = settings_reference.render(reference)
    assert reference.missing == [], f"settings without a description: {reference.missing}"
    assert _leaf_paths() == set(reference.paths())
    for path in _leaf_paths():
        assert f"`{dotted(path)}`<br>`{env_name(path)}`" in text


def test_effective_defaults_are_shown_where_a_setting_sits() -> None:
    rows = {row.path: row for table in settings_reference.build().tables for row in table.rows}
    assert rows[("consumer", "retry", "max_attempts")].default == "`3`"  # in_process_policy(), not RetryPolicy()'s 5
    assert rows[("restore", "policy", "max_attempts")].default == "`5`"
    assert rows[("db_schema",)].default == "unset"


def test_every_command_is_in_the_cli_reference() -> None:
    text = cli_reference.render()
    paths = [item.path for item in cli_reference.walk()]
    assert ("kafkaguard", "dead-letters", "replay") in paths
    for path in paths:
        assert f"`{' '.join(path)}`" in text
    assert "`--store`" in text and "`listener` \\| `publisher` \\| `last-resort`" in text


def test_every_public_name_is_in_the_api_reference() -> None:
    text = api_reference.render()
    for name in kafkaguard.__all__:
        if not name.startswith("__"):
            assert f"::: kafkaguard.{name}\n" in text
    assert "## Errors" in text


def test_sphinx_roles_become_links_only_for_public_names() -> None:
    assert (
        convert(":class:`~kafkaguard.errors.ConfigurationError`")
        == "[`ConfigurationError`][kafkaguard.ConfigurationError]"
    )
    assert convert(":func:`add_event`") == "[`add_event`][kafkaguard.add_event]"
    assert convert(":class:`Applier`") == "`Applier`"
    assert convert(":mod:`kafkaguard.consumer.batch`") == "`kafkaguard.consumer.batch`"
