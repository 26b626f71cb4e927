"""tune_gc: startup's objects frozen, a higher young threshold, and 0 leaving the collector alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

import kafkaguard
from kafkaguard.errors import ConfigurationError
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


def test_a_negative_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="gc threshold"):
        kafkaguard.tune_gc(-1)


def test_the_setting_defaults_to_the_tuned_threshold_and_refuses_a_negative(monkeypatch: pytest.MonkeyPatch) -> None:
    assert KafkaguardSettings().gc_threshold == 50_000
    monkeypatch.setenv("KAFKAGUARD_GC_THRESHOLD", "0")
    assert KafkaguardSettings().gc_threshold == 0
    monkeypatch.setenv("KAFKAGUARD_GC_THRESHOLD", "-5")
    with pytest.raises(ConfigurationError, match="gc_threshold"):
        KafkaguardSettings()
