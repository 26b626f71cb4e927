"""The chaos suite's invariants and acceptance, table-tested on hand-made rows (no I/O)."""

from __future__ import annotations

import uuid

import pytest

from chaos.invariants import Applied, Committed, verdict
from chaos.profiles import QUICK
from chaos.report import violations
from chaos.run import ScenarioOutcome
from chaos.runner import RunResult, matrix
from chaos.workload import plan
from kafkaguard.publisher.settings import PublishMode

IDS = [uuid.UUID(int=n) for n in range(10)]


def c(n: int, key: str, seq: int) -> Committed:
    return Committed(IDS[n], key, seq)


def a(n: int, key: str, seq: int, order: int, count: int = 1) -> Applied:
    return Applied(IDS[n], key, seq, count, order)


@pytest.mark.parametrize(
    ("committed", "applied", "expected"),
    [
        ([], [], (0, 0, 0, 0)),
        ([c(0, "k", 1), c(1, "k", 2)], [a(0, "k", 1, 1), a(1, "k", 2, 2)], (0, 0, 0, 0)),
        ([c(0, "k", 1), c(1, "k", 2)], [a(0, "k", 1, 1)], (1, 0, 0, 0)),  # lost
        ([c(0, "k", 1)], [a(0, "k", 1, 1, count=3)], (0, 2, 0, 0)),  # applied three times
        ([c(0, "k", 1), c(1, "k", 2)], [a(1, "k", 2, 1), a(0, "k", 1, 2)], (0, 0, 1, 0)),  # seq 1 after 2
        ([c(0, "k", 1), c(1, "j", 1)], [a(1, "j", 1, 1), a(0, "k", 1, 2)], (0, 0, 0, 0)),  # other keys interleave
        ([c(0, "k", 1)], [a(0, "k", 1, 1), a(5, "k", 2, 2)], (0, 0, 0, 1)),  # phantom: never committed
        # a phantom with a high sequence does not make the real event after it "reordered"
        ([c(0, "k", 1), c(1, "k", 3)], [a(5, "k", 2, 1), a(0, "k", 1, 2), a(1, "k", 3, 3)], (0, 0, 0, 1)),
        ([c(0, "k", 1), c(1, "k", 2), c(2, "k", 3)], [a(2, "k", 3, 1), a(0, "k", 1, 2), a(1, "k", 2, 3)], (0, 0, 2, 0)),
    ],
)
def test_verdict(committed: list[Committed], applied: list[Applied], expected: tuple[int, int, int, int]) -> None:
    v = verdict(committed, applied)
    assert (v.lost, v.duplicated, v.reordered, v.phantom) == expected


def test_plan_is_reproducible_and_sequential_per_key() -> None:
    first, again = plan(7, 500), plan(7, 500)
    assert first == again and plan(8, 500) != first
    last: dict[str, int] = {}
    for step in first:
        assert step.seq == last.get(step.key, 0) + 1
        last[step.key] = step.seq
    assert 0 < sum(s.rollback for s in first) < 60


def _result(mode: PublishMode, lost: int = 0, phantom: int = 0) -> RunResult:
    v = verdict([c(0, "k", 1)] if lost else [], [a(5, "k", 1, 1)] if phantom else [])
    return RunResult("s", mode, 1.0, ScenarioOutcome(v, None, 1, 0, 0, 0))


@pytest.mark.parametrize(
    ("result", "bad"),
    [
        (_result(PublishMode.OUTBOX), False),
        (_result(PublishMode.OUTBOX, phantom=1), True),
        (_result(PublishMode.DIRECT, phantom=1), False),  # direct may phantom
        (_result(PublishMode.HTTP, lost=1), True),
        (_result(PublishMode.BACKGROUND, lost=1), False),  # background's loss is reported, not failed
        (RunResult("s", PublishMode.OUTBOX, 1.0, None, "boom"), True),
    ],
)
def test_violations(result: RunResult, bad: bool) -> None:
    assert bool(violations([result])) is bad


def test_quick_matrix_covers_every_mode_and_the_background_loss_window() -> None:
    pairs = matrix(QUICK)
    assert {m for _, m in pairs} == set(PublishMode)
    assert ("publisher-kill", PublishMode.BACKGROUND) in {(s.name, m) for s, m in pairs}
    assert [(s.name, m) for s, m in matrix(QUICK, ["relay-kill"])] == [("relay-kill", PublishMode.OUTBOX)]
