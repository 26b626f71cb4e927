"""Backoff shapes, retry decisions and error classification, table-tested."""

import random

import pytest
import sqlalchemy.exc
from pydantic import TypeAdapter, ValidationError

from kafkaguard.envelope import DecodeError, DecodeReason
from kafkaguard.policies.backoff import Backoff, Exponential, Fixed, Schedule
from kafkaguard.policies.classify import ErrorClassifier
from kafkaguard.policies.retry import GiveUp, Retry, RetryPolicy, next_step


@pytest.mark.parametrize(
    ("backoff", "attempt", "expected"),
    [
        (Fixed(seconds=3600), 1, 3600),
        (Fixed(seconds=3600), 4, 3600),
        (Exponential(base=1, factor=2, max_seconds=100, jitter=0), 1, 1),
        (Exponential(base=1, factor=2, max_seconds=100, jitter=0), 4, 8),
        (Exponential(base=1, factor=2, max_seconds=100, jitter=0), 20, 100),
        (Schedule(seconds=(5, 60)), 1, 5),
        (Schedule(seconds=(5, 60)), 2, 60),
        (Schedule(seconds=(5, 60)), 9, 60),
    ],
)
def test_delays(backoff: Fixed | Exponential | Schedule, attempt: int, expected: float) -> None:
    assert backoff.delay(attempt) == expected


def test_jitter_stays_within_its_band() -> None:
    b = Exponential(base=10, factor=1, max_seconds=10, jitter=0.5)
    rng = random.Random(7)
    delays = [b.delay(1, rng) for _ in range(500)]
    assert min(delays) >= 5 and max(delays) <= 10
    assert max(delays) - min(delays) > 3  # actually spread


def test_backoff_parses_from_settings_by_kind() -> None:
    adapter: TypeAdapter[Backoff] = TypeAdapter(Backoff)
    assert adapter.validate_python({"kind": "schedule", "seconds": [1, 2]}) == Schedule(seconds=(1, 2))
    with pytest.raises(ValidationError):
        adapter.validate_python({"kind": "schedule", "seconds": []})


def test_order_note_defaults_five_attempts_an_hour_apart() -> None:
    policy = RetryPolicy()
    steps = [next_step(n, True, policy) for n in range(1, 6)]
    assert steps == [Retry(3600)] * 4 + [GiveUp("exhausted")]


def test_permanent_errors_give_up_at_once() -> None:
    assert next_step(1, False, RetryPolicy()) == GiveUp("permanent")


def test_classification() -> None:
    c = ErrorClassifier()
    assert c.is_retriable(TimeoutError())
    assert c.is_retriable(sqlalchemy.exc.OperationalError("x", {}, Exception()))
    assert not c.is_retriable(ValueError())
    assert not c.is_retriable(KeyError("k"))  # a LookupError
    assert not c.is_retriable(DecodeError(DecodeReason.NOT_JSON, "x"))
    assert c.is_retriable(RuntimeError())  # default
    assert not ErrorClassifier(default=False).is_retriable(RuntimeError())
    assert ErrorClassifier(retriable=("ValueError",), permanent=()).is_retriable(ValueError())
