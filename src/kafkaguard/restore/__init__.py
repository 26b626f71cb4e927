"""Restore jobs: process due dead letters in per-key order (publisher and listener stores)."""
