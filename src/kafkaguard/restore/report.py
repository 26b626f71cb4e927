"""What one run of a restore job did: one report for both jobs (publisher and listener)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RunReport:
    """What one run did: records ``restored``, ``retried`` (failed, to be tried again), ``failed``
    (attempts exhausted: parked for an operator), keys skipped (held by another run), and the ids
    restored. The listener job also counts ``unhandled_keys``: keys left alone because the registry
    has no handler for one of their open records' types (``unhandled_types``: type → why); the
    publisher job leaves them at zero."""

    restored: int = 0
    retried: int = 0
    failed: int = 0
    skipped_keys: int = 0
    restored_ids: list[int] = field(default_factory=list)
    unhandled_keys: int = 0
    unhandled_types: dict[str, str] = field(default_factory=dict)

    def add(self, other: RunReport) -> None:
        """Add ``other``'s counts to this report."""
        self.restored += other.restored
        self.retried += other.retried
        self.failed += other.failed
        self.skipped_keys += other.skipped_keys
        self.restored_ids += other.restored_ids
        self.unhandled_keys += other.unhandled_keys
        self.unhandled_types.update(other.unhandled_types)
