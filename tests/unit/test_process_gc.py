"""tune_gc: startup's objects frozen, a higher young threshold, and 0 leaving the collector alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kafkaguard
from kafkaguard.errors import ConfigurationError
from kafkaguard.process_gc import GC_THRESHOLD_MAX
from kafkaguard.settings import KafkaguardSettings


@pytest.fixture(autouse=True)
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_freezes_startup_objects_and_raises_the_young_threshold() -> None:
    gc.set_threshold(700, 10, 10)
    alive = [object() for _ in range(10)]  # something of "startup" to freeze
    assert kafkaguard.tune_gc(50_000) is True
    assert gc.get_threshold() == (50_000, 10, 10)
    assert gc.get_freeze_count() >= len(alive)


def test_zero_leaves_the_collector_alone() -> None:
    gc.set_threshold(700, 10, 10)
    frozen = gc.get_freeze_count()
    assert kafkaguard.tune_gc(0) is False
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == frozen


def test_a_threshold_outside_what_python_takes_is_refused() -> None:
    with pytest.raises(ValueError, match="gc threshold"):
        kafkaguard.tune_gc(-1)
    with pytest.raises(ValueError, match="gc threshold"):  # gc.set_threshold would raise OverflowError
        kafkaguard.tune_gc(GC_THRESHOLD_MAX + 1)
    assert kafkaguard.tune_gc(GC_THRESHOLD_MAX) is True
    assert gc.get_threshold()[0] == GC_THRESHOLD_MAX


def test_the_setting_defaults_to_the_tuned_threshold_and_refuses_a_negative(monkeypatch: pytest.MonkeyPatch) -> None:
    assert KafkaguardSettings().gc_threshold == 50_000
    monkeypatch.setenv("KAFKAGUARD_GC_THRESHOLD", "0")
    assert KafkaguardSettings().gc_threshold == 0
    monkeypatch.setenv("KAFKAGUARD_GC_THRESHOLD", "-5")
    with pytest.raises(ConfigurationError, match="gc_threshold"):
        KafkaguardSettings()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.one_of(
        st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),  # numbers beyond a C int, both ways
    )
)
def test_any_gc_threshold_text_is_a_threshold_or_one_clear_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("KAFKAGUARD_GC_THRESHOLD", value)
    stripped = value.strip()
    if stripped.isascii() and stripped.lstrip("+").isdigit() and int(stripped) <= GC_THRESHOLD_MAX:
        assert KafkaguardSettings().gc_threshold == int(stripped)  # a whole number Python's collector takes
        return
    try:
        threshold = KafkaguardSettings().gc_threshold
    except ConfigurationError as exc:
        message = str(exc)
    else:  # another form pydantic reads as a number (e.g. "1_000", "5.0"): still a threshold
        assert isinstance(threshold, int) and 0 <= threshold <= GC_THRESHOLD_MAX
        return
    assert "gc_threshold" in message and "KAFKAGUARD_GC_THRESHOLD" in message
