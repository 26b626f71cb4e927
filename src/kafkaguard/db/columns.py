"""Table and status names, defined once (SQL in every module refers to these)."""

from enum import StrEnum

OUTBOX = "outbox"
PUBLISHER_DEAD_LETTERS = "kafka_publisher_dead_letters"
LISTENER_DEAD_LETTERS = "kafka_listener_dead_letters"
INBOX = "kafka_inbox"
LAST_RESORT = "kafkaguard_last_resort"
CONSOLE_AUDIT = "kafkaguard_console_audit"  # migration 0004: the operator console's audit log
STACK_FRAME_SQL = r"""coalesce(rtrim((regexp_match(stack, '.*(File "[^"]*", line [0-9]+, in [^\n]*)'))[1]), '-')"""
"""The throwing frame of a listener dead letter's stack (its last ``File "...", line N, in name`` line, ``-``
without one): the stored column ``stack_frame`` (migration 0004), see :mod:`kafkaguard.console.fingerprint`."""
BEGIN_EVENT = "kafkaguard_begin_event"  # a function (migration 0003): the consumer's steps before a handler
OUTBOX_NOTIFY_CHANNEL = "kafkaguard_outbox"
OUTBOX_SHARDS = 64  # virtual shards of the outbox, by hash of the key; relays own shards


class DeadLetterStatus(StrEnum):
    """Life of a dead letter: ``pending`` → ``restored`` | ``failed`` (parked for an operator).

    ``parked`` (listener store only): a later event of a key that has an open dead letter, stored
    behind it so that the key's order holds; released when the head is restored.
    ``discarded``: removed from processing by an operator, kept for audit.
    """

    PENDING = "pending"
    PARKED = "parked"
    RESTORED = "restored"
    FAILED = "failed"
    DISCARDED = "discarded"


OPEN_STATUSES = (DeadLetterStatus.PENDING.value, DeadLetterStatus.PARKED.value, DeadLetterStatus.FAILED.value)
"""Statuses that block later events of the same key (order holds until an operator decides)."""


class PublishSource(StrEnum):
    """Which path produced a publisher dead letter."""

    OUTBOX = "outbox"
    DIRECT = "direct"
    BACKGROUND = "background"
    HTTP = "http"
