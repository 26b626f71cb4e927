"""Run a chaos suite: the chosen scenarios x modes, each on fresh schemas and topics, one after another.

Runs are sequential (faults act on shared servers). A run that crashes is reported with its error
rather than stopping the suite; its schemas and logs are kept for reading.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from chaos.database import Dialect
from chaos.profiles import Profile
from chaos.recovery import recover
from chaos.run import RunContext, ScenarioOutcome
from chaos.scenarios import SCENARIOS, Scenario
from chaos.stack import ChaosStack
from kafkaguard.publisher.settings import PublishMode

log = logging.getLogger("kafkaguard.chaos")

# The quick profile's matrix (runs inside `make test`): every mode once, and outbox under the
# faults that break each of its moving parts; the background loss window is always in.
QUICK_MATRIX: tuple[tuple[str, PublishMode], ...] = (
    ("publisher-kill", PublishMode.OUTBOX),
    ("publisher-kill", PublishMode.BACKGROUND),
    ("broker-kill", PublishMode.OUTBOX),
    ("broker-kill", PublishMode.DIRECT),
    ("relay-kill", PublishMode.OUTBOX),
    ("consumer-kill", PublishMode.OUTBOX),
    ("pg-down-publisher", PublishMode.OUTBOX),
    ("pg-down-consumer", PublishMode.HTTP),
    ("network-cut", PublishMode.OUTBOX),
    ("rebalance-storm", PublishMode.OUTBOX),
    ("duplicates", PublishMode.OUTBOX),
    ("poison", PublishMode.OUTBOX),
)


@dataclass(frozen=True)
class RunResult:
    """One cell of the table: scenario x mode → outcome (or the error that ended the run)."""

    scenario: str
    mode: PublishMode
    seconds: float
    outcome: ScenarioOutcome | None
    error: str | None = None


def matrix(
    profile: Profile, scenarios: Iterable[str] = (), modes: Iterable[str] = ()
) -> list[tuple[Scenario, PublishMode]]:
    """The (scenario, mode) pairs to run: the quick matrix or every applicable pair, then filtered."""
    by_name = {s.name: s for s in SCENARIOS}
    if profile.name == "quick":
        pairs = [(by_name[n], m) for n, m in QUICK_MATRIX]
    else:
        pairs = [(s, m) for s in SCENARIOS for m in s.modes]
    wanted_s, wanted_m = set(scenarios), {PublishMode(m) for m in modes}
    if wanted_s:
        unknown = wanted_s - by_name.keys()
        if unknown:
            raise ValueError(f"unknown scenario(s) {sorted(unknown)}; known: {sorted(by_name)}")
        if profile.name == "quick":  # a named scenario runs for all its modes even in the quick profile
            pairs = [(by_name[n], m) for n in sorted(wanted_s) for m in by_name[n].modes]
        pairs = [(s, m) for s, m in pairs if s.name in wanted_s]
    if wanted_m:
        pairs = [(s, m) for s, m in pairs if m in wanted_m]
    return pairs


def run_one(
    stack: ChaosStack, scenario: Scenario, mode: PublishMode, profile: Profile, seed: int, logs: Path
) -> RunResult:
    """Set up, run, inject, recover and measure one scenario for one mode."""
    started = time.monotonic()
    # The proxied cluster is one node by construction; the others have at least the suite's minimum.
    brokers = scenario.brokers if scenario.proxied else max(scenario.brokers, stack.min_brokers)
    ctx = RunContext(
        stack, mode, profile, seed, brokers, logs / f"{scenario.name}-{mode.value}", proxied=scenario.proxied
    )
    ok = False
    try:
        ctx.setup()
        ctx.start()
        scenario.inject(ctx)
        ctx.wait_writer()
        outcome = ctx.measure(recover(ctx))
        ok = True
        return RunResult(scenario.name, mode, time.monotonic() - started, outcome)
    except Exception as exc:
        log.exception("chaos run %s/%s failed", scenario.name, mode.value)
        error = "".join(traceback.format_exception_only(exc)).strip()
        return RunResult(scenario.name, mode, time.monotonic() - started, None, f"{error} (logs in {ctx.logs})")
    finally:
        ctx.teardown(keep=not ok)
        stack.kafka(scenario.brokers, proxied=scenario.proxied)  # every node up again for the next run
        stack.heal_databases()


def run_suite(
    profile: Profile,
    *,
    seed: int,
    out: Path,
    scenarios: Iterable[str] = (),
    modes: Iterable[str] = (),
    on_result: Callable[[RunResult], None] | None = None,
    secure: bool = False,
    min_brokers: int = 1,
    database: Dialect = "postgresql",
) -> list[RunResult]:
    """Run the selected matrix on a fresh :class:`ChaosStack` (secured servers with ``secure``; every
    cluster but the proxied one of at least ``min_brokers`` nodes; both services' databases on
    ``database``, PostgreSQL or MariaDB); return the results in order."""
    pairs = matrix(profile, scenarios, modes)
    results: list[RunResult] = []
    with ChaosStack(secure=secure, min_brokers=min_brokers, database=database) as stack:
        for scenario, mode in pairs:
            result = run_one(stack, scenario, mode, profile, seed, out / "logs")
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results
