"""Say when a consumer waits for its partitions, and why (pure apart from the injected clock).

A consumer that joins its group gets partitions only when the group's rebalance completes, and
Kafka completes it only once every member it knows has rejoined. A member that was killed
(SIGKILL, OOM, a lost node) did not leave: the group waits for its session to time out
(``session.timeout.ms``, 45 s by default) before it rebalances without it, so a consumer restarted
after a kill sat ~50 s without a word. :class:`AssignmentWait` turns that silence into one line
per ``interval`` naming the likely cause and what shortens it: static membership
(``consumer.instance_id`` → ``group.instance.id``), with which a restarted member takes its
partitions back at once, without a rebalance.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FIRST_REPORT_AFTER = 5.0
"""Seconds without partitions before the first line (a normal join takes ~3 s: the broker's
``group.initial.rebalance.delay.ms``)."""

REPORT_EVERY = 10.0
"""Seconds between two lines while the wait goes on."""


class AssignmentWait:
    """Tracks whether a consumer of ``group`` holds partitions, and since when it has none.

    ``static``: the consumer has a ``group.instance.id``; ``session_timeout_ms``: its session timeout,
    named ``session_setting`` in the lines (the broker's ``group.consumer.session.timeout.ms`` under
    the consumer group protocol, where the client has no say).
    Not thread-safe: the consumer's thread calls it (from ``poll`` and the rebalance callbacks).
    """

    def __init__(
        self,
        group: str,
        *,
        static: bool,
        session_timeout_ms: int,
        session_setting: str = "session.timeout.ms",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.group = group
        self.static = static
        self.session_timeout_ms = session_timeout_ms
        self.session_setting = session_setting
        self._clock = clock
        self._since: float | None = clock()
        self._next_report = self._since + FIRST_REPORT_AFTER

    def waiting(self) -> None:
        """The consumer has no partitions from now on (subscribed, or its partitions were revoked)."""
        if self._since is None:
            self._since = self._clock()
            self._next_report = self._since + FIRST_REPORT_AFTER

    def assigned(self, count: int) -> str | None:
        """Partitions arrived (``count`` of them); a line to log if the wait was long enough to have been reported."""
        if self._since is None:
            return None
        waited = self._clock() - self._since
        self._since = None
        if count == 0:
            return (
                f"group {self.group}: joined with no partitions: the group has at least as many members as "
                "its topics have partitions; this member stays idle until one leaves"
            )
        if waited < FIRST_REPORT_AFTER:
            return None
        return f"group {self.group}: got {count} partitions after waiting {waited:.0f} s"

    def check(self) -> str | None:
        """A line when the wait has lasted long enough and none was said for ``REPORT_EVERY`` s.

        Call it only while Kafka can be reached: an unreachable broker has a line of its own
        (:mod:`kafkaguard.transports.kafka_logging`)."""
        if self._since is None:
            return None
        now = self._clock()
        if now < self._next_report:
            return None
        self._next_report = now + REPORT_EVERY
        waited = now - self._since
        head = f"group {self.group}: waiting {waited:.0f} s for partitions"
        session = self.session_timeout_ms / 1000
        if self.static:
            return (
                f"{head}: the group is rebalancing (this member is static, group.instance.id: a restart takes "
                f"its partitions back at once; another member that was killed holds its own until its session "
                f"times out, {self.session_setting} = {session:.0f} s)"
            )
        return (
            f"{head}: the group is rebalancing and Kafka waits for every member to rejoin; a member that stopped "
            f"without leaving (killed) is waited for until its session times out ({self.session_setting} = "
            f"{session:.0f} s). Static membership (KAFKAGUARD_CONSUMER__INSTANCE_ID) makes a restart take its "
            "partitions back at once"
        )
