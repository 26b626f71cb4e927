"""kafkaguard's benchmarks (issue 9): ``make bench`` runs them all; see ``bench/RESULTS.md``."""
