"""Transaction-scoped advisory locks that serialise decisions about one key.

DESIGN.md, "Parking and restoring race each other": the consumer decides "is key K blocked?" in
the same transaction that writes the inbox row or the dead letter, holding :func:`key_lock_sql`;
the restore job holds the same lock while it processes K. The lock is released at commit or
rollback, so a crash never leaves it held.
"""

from __future__ import annotations

KEY_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtext(%(scope)s), hashtext(%(key)s))"
"""psycopg form; ``scope`` is the consumer group (listener) or ``'publisher'``."""

KEY_LOCK_SQLA = "SELECT pg_advisory_xact_lock(hashtext(:scope), hashtext(:key))"
"""SQLAlchemy ``text()`` form of the same lock."""

PUBLISHER_SCOPE = "kafkaguard:publisher"
