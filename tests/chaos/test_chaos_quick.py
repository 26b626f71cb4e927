"""The chaos suite's quick profile on real Kafka and PostgreSQL (part of ``make test``).

Asserts the acceptance of issue 7: outbox loses, duplicates, reorders and phantoms nothing under
any fault of the profile; direct and http lose nothing; background's loss window (the publishing
process killed after commits) is measured and reported with lost > 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import report
from chaos.profiles import QUICK
from chaos.runner import matrix, run_suite
from kafkaguard.publisher.settings import PublishMode

SEED = 7


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_chaos_quick_profile(tmp_path: Path) -> None:
    results = run_suite(QUICK, seed=SEED, out=tmp_path)
    report.print_table(results, QUICK, SEED)
    json_path, md_path = report.write(results, QUICK, SEED, tmp_path)
    assert json_path.exists() and "| scenario | mode |" in md_path.read_text()

    assert len(results) == len(matrix(QUICK))
    assert report.violations(results) == []
    for r in results:
        assert r.outcome is not None
        assert r.outcome.verdict.committed > QUICK.events * 0.8, f"{r.scenario}/{r.mode}: the workload ran"
        assert r.outcome.rolled_back > 0, "the workload rolls some writes back on purpose"

    window = [r for r in results if (r.scenario, r.mode) == ("publisher-kill", PublishMode.BACKGROUND)]
    assert len(window) == 1 and window[0].outcome is not None
    assert window[0].outcome.verdict.lost > 0, "background's loss window was measured"
