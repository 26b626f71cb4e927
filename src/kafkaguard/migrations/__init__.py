"""Alembic migrations of kafkaguard's tables (run with ``kafkaguard db upgrade``)."""
