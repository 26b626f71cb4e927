"""Hypothesis profiles of the fuzz suite: ``quick`` inside ``make test``, ``full`` for ``make fuzz``.

``KAFKAGUARD_FUZZ=full`` selects the full profile (many more examples, larger inputs); anything
else, or nothing, the quick one (a bounded number of examples, about two minutes for the whole
folder). Each test states its example budget for both profiles with :func:`fuzz_settings`.

The example database lives in ``$KAFKAGUARD_RUN_DIR/hypothesis`` (gitignored ``.run``), so a failure
found once is tried first the next time.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis.database import DirectoryBasedExampleDatabase

FUZZ_ENV = "KAFKAGUARD_FUZZ"
FULL = "full"


def is_full() -> bool:
    """Whether ``make fuzz``'s full profile is selected."""
    return os.environ.get(FUZZ_ENV, "").strip().lower() == FULL


def pick(quick: int, full: int) -> int:
    """``quick`` or ``full`` by the selected profile (example counts, sizes)."""
    return full if is_full() else quick


def storage_dir() -> Path:
    """Where hypothesis keeps its example database and caches."""
    run_dir = Path(os.environ.get("KAFKAGUARD_RUN_DIR") or Path(__file__).resolve().parents[2] / ".run")
    return run_dir / "hypothesis"


def fuzz_settings(quick: int, full: int, *, shrink: bool = True) -> settings:
    """Settings for a fuzz test: ``quick``/``full`` examples, no deadline (real servers answer in
    milliseconds to seconds), health checks that only make sense for pure functions turned off.

    ``shrink=False`` for tests whose examples share a long-lived broker consumer: a failing example
    is reported as found, with the poison message named by the test itself.
    """
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
    if shrink:
        phases.append(Phase.shrink)
    return settings(
        max_examples=pick(quick, full),
        deadline=None,
        phases=phases,
        database=DirectoryBasedExampleDatabase(storage_dir() / "examples"),
        print_blob=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # fixtures are shared by the examples on purpose
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
    )
