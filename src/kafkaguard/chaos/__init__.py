"""The chaos verification suite: workloads through the real stack while faults are injected.

Entry points: ``kafkaguard chaos`` (CLI), :func:`kafkaguard.chaos.runner.run_suite`, ``make chaos``.
Invariants (lost, duplicated, reordered, phantom) are computed from the databases after the
restore jobs ran — see :mod:`kafkaguard.chaos.invariants`.
"""
