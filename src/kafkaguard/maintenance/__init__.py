"""Housekeeping: keep kafkaguard's tables small."""
