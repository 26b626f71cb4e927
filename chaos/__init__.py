"""The chaos verification suite: workloads through the real stack while faults are injected.

Development tooling beside ``bench/``, not part of the installed package. Run it from a checkout
with ``python -m chaos --profile quick|full [--seed N] [--events N] [--scenario NAME]...
[--mode MODE]... [--out DIR]`` (``kafkaguard chaos`` takes the same options and runs this package
when it finds the checkout) or ``make chaos`` (the full profile); the quick profile also runs in
``make test`` (``tests/chaos/test_chaos_quick.py``).

Each run (one scenario for one publish mode) starts its own writer process, relay (outbox),
consumer process or HTTP endpoint, on fresh schemas of two PostgreSQL servers (publisher's and
consumer's) and a fresh topic; the scenario breaks something mid-workload and repairs it; the
restore jobs run until nothing is owed; then :mod:`chaos.invariants` counts lost,
duplicated, reordered and phantom events from the databases. Modules: ``workload`` (the seeded
plan), ``writer`` (the writing service), ``projection`` (business tables and the consumer's
counting projection), ``scenarios``, ``injections`` (plain-client duplicates and poison),
``proxy`` (network cut), ``stack``, ``run``, ``recovery``, ``runner``, ``report``, ``command``
(what the command does).
"""
