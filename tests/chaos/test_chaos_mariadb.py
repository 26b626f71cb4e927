"""The quick chaos profile's outbox runs with both services' databases on MariaDB (part of ``make test``; issue 18).

The relay holds its shards with named locks and polls in place of NOTIFY; the consumer's key locks
are named locks too. Outbox mode must lose, duplicate, reorder and invent nothing under every fault
of the profile, as on PostgreSQL; the database faults stop and start the MariaDB server.
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
@pytest.mark.timeout(1200)
def test_chaos_quick_outbox_on_mariadb(tmp_path: Path) -> None:
    results = run_suite(QUICK, seed=SEED, out=tmp_path, modes=["outbox"], database="mariadb")
    report.print_table(results, QUICK, SEED)
    assert len(results) == len(matrix(QUICK, modes=["outbox"])) >= 9
    assert report.violations(results) == []
    for r in results:
        assert r.mode is PublishMode.OUTBOX and r.outcome is not None, r.error
        assert r.outcome.verdict.committed > QUICK.events * 0.8, f"{r.scenario}: the workload ran"
        assert r.outcome.rolled_back > 0, "the workload rolls some writes back on purpose"
