"""The quick chaos profile's outbox runs on secured servers (part of ``make test``; issue 17).

Every cluster but the proxied one has 3 brokers with SCRAM-over-TLS and mTLS listeners only and
ACLs; each worker connects as its own principal (relay and writer as ``relay``, consumers as
``consumer``); PostgreSQL takes TLS only. Outbox mode must lose, duplicate, reorder and invent
nothing under every fault, as on the plaintext stack.
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
def test_chaos_quick_outbox_on_the_secured_three_broker_stack(tmp_path: Path) -> None:
    results = run_suite(QUICK, seed=SEED, out=tmp_path, modes=["outbox"], secure=True, min_brokers=3)
    report.print_table(results, QUICK, SEED)
    assert len(results) == len(matrix(QUICK, modes=["outbox"])) >= 9
    assert report.violations(results) == []
    for r in results:
        assert r.mode is PublishMode.OUTBOX and r.outcome is not None, r.error
        # applied at all means over TLS with SCRAM: a secured broker has no other client listener
        assert r.outcome.verdict.committed > QUICK.events * 0.8, f"{r.scenario}: the workload ran"
