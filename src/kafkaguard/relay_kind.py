"""Who relays the outbox (pure; a low module so publishers and the relay both read it without importing each other)."""

from __future__ import annotations

from enum import StrEnum


class RelayKind(StrEnum):
    """Who relays the outbox: kafkaguard's relay worker, or Debezium's connector (see relay.debezium).

    The publisher reads it too: with ``debezium`` the outbox is written insert-then-delete.
    """

    KAFKAGUARD = "kafkaguard"
    DEBEZIUM = "debezium"
