"""The consumer loop: poll, bring each message to a durable outcome, commit, repeat.

Guarantees (DESIGN.md, "Consumer"):
- An offset is committed only after the outcome of every earlier message of its partition (effect,
  duplicate skip, parked or dead letter) is durable in PostgreSQL: at-least-once delivery, and
  with the inbox, exactly-once effect.
- Commits are synchronous: after each polled chunk, and in the revoke callback for the revoked
  partitions (the callback runs inside ``poll``, when no message is half-done).
- PostgreSQL down: commit what is durable, seek back to the first message without an outcome,
  pause every partition and keep polling (group membership stays alive) while probing the database
  with a growing delay up to ``store_backoff_max``; resume when it answers. Nothing is dropped.
- :meth:`Worker.stop` (SIGTERM) lets the message in progress finish (a retry wait is cut short and
  that message is redelivered), commits and leaves the group.

Thread-safety: :meth:`run` runs in one thread; :meth:`stop` may be called from any thread or a
signal handler.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from kafkaguard.consumer.apply import Applier, Interrupted
from kafkaguard.consumer.batch import apply_batch
from kafkaguard.consumer.decisions import INTERNAL_ERROR, OffsetTracker, Outcome, rewind_positions
from kafkaguard.consumer.records import Record
from kafkaguard.consumer.source import MessageSource, TopicPartition
from kafkaguard.errors import ConsumerError, StoreUnavailableError

if TYPE_CHECKING:
    from kafkaguard.consumer.registry import HandlerRegistry
    from kafkaguard.settings import KafkaguardSettings
    from kafkaguard.stores.inbox import ConsumerStore

log = logging.getLogger("kafkaguard.consumer")

FETCH_MAX = 500  # records per poll when not batching; bounds the work redone after a crash


class Worker:
    """Runs :class:`Applier` over a :class:`MessageSource` until stopped.

    Build one with :meth:`from_settings`; the constructor takes the ports (a source, an applier)
    for tests and custom wiring.
    """

    @classmethod
    def from_settings(
        cls,
        settings: KafkaguardSettings,
        registry: HandlerRegistry,
        *,
        on_outcome: Callable[[Record, Outcome], None] | None = None,
        source: MessageSource | None = None,
        store: ConsumerStore | None = None,
    ) -> Worker:
        """A worker of ``settings.consumer`` (group, topics, retries, batch size) applying ``registry``'s
        handlers in ``settings.database_url`` (schema ``settings.db_schema``), reading Kafka at
        ``settings.bootstrap_servers``. Its engines are made here (an async one too when a handler
        is ``async def``) and live as long as the process.

        ``on_outcome(record, outcome)`` runs after each message's outcome is durable; ``source``
        replaces the Kafka consumer (e.g. a ``MemorySource`` in tests), ``store`` the PostgreSQL store
        (e.g. a ``MemoryConsumerStore``: then no database is needed). Raises
        :class:`~kafkaguard.errors.ConfigurationError` without topics or database URL.
        Run it with :meth:`run` in a thread of its own; :meth:`stop` (any thread) ends it.
        """
        from kafkaguard.consumer.runner import build_worker  # runner imports this module

        return build_worker(settings, registry, on_outcome=on_outcome, source=source, store=store)

    def __init__(
        self,
        source: MessageSource,
        applier: Applier,
        *,
        on_outcome: Callable[[Record, Outcome], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.applier = applier
        self.settings = applier.settings
        self.stopping = applier.stop
        self.stats: Counter[str] = Counter()
        # Chunk mode: chunks committed in one transaction ("applied"), chunk transactions rolled back
        # and split ("fell_back"), records taken through the per-event path instead ("isolated").
        self.batches: Counter[str] = Counter()
        self.tracker = OffsetTracker()
        self.on_outcome = on_outcome
        # Called once per loop turn in this thread (the consumer handle is not shared across threads).
        self.on_tick = on_tick
        # Called in this thread once per round the store was found unreachable (the failure that
        # paused the worker, then each failed probe), for the store-outage metric.
        self.on_store_outage: Callable[[], None] | None = None
        self.source.set_on_revoke(self._revoked)

    def stop(self) -> None:
        """Ask the loop to finish the message in progress, commit and return."""
        self.stopping.set()

    def run(self) -> None:
        """Poll and apply until :meth:`stop`; then commit and close the source."""
        fetch = max(FETCH_MAX, self.settings.batch_size)
        try:
            while not self.stopping.is_set():
                records = self.source.poll(fetch, self.settings.poll_timeout)
                if records:
                    self._process(records)
                self._commit(wait=False)
                if self.on_tick is not None:
                    self.on_tick()
        finally:
            self._commit()
            self.source.close()
            self.applier.close()
            log.info("consumer stopped group=%s stats=%s", self.applier.group, dict(self.stats))

    # -- one polled chunk -------------------------------------------------------------------------
    def _process(self, records: Sequence[Record]) -> None:
        """Bring ``records`` (one poll) to durable outcomes in offset order: chunks of up to
        ``batch_size`` in one transaction each (:func:`apply_batch`), a chunk of one and every record
        a chunk could not take through the per-event path."""
        size = self.settings.batch_size
        if not self.applier.store.rolls_back_handler_writes:
            # A chunk that fails is rolled back and applied again: on a store that cannot undo the
            # handlers' writes (MongoDB) that would run them twice, so each event is its own unit.
            size = 1
        done = 0  # records[:done] have a durable outcome; processing is in order
        try:
            if size == 1:
                for r in records:
                    self._done(r, self._process_one(r))
                    done += 1
                return
            n = len(records)
            isolate: tuple[int, int] | None = None  # records[a:b] take the per-event path when reached
            while done < n:
                if isolate is not None and isolate[0] == done:
                    for r in records[done : isolate[1]]:
                        self._done(r, self._process_one(r))
                        done += 1
                    self.batches["isolated"] += isolate[1] - isolate[0]
                    isolate = None
                    continue
                stop = min(done + size, n if isolate is None else isolate[0])
                if stop - done == 1:  # a chunk of one: the per-event path is as fast and retries in place
                    self._done(records[done], self._process_one(records[done]))
                    done += 1
                    continue
                result = apply_batch(self.applier, records[done:stop])
                start = done
                if result.outcomes:
                    self.batches["applied"] += 1
                    for r, o in zip(records[done : done + len(result.outcomes)], result.outcomes, strict=True):
                        self._done(r, o)
                    done += len(result.outcomes)
                if result.rolled_back:
                    self.batches["fell_back"] += 1
                if result.isolate is not None:
                    # Prefix again as a chunk, the isolated records alone, then the rest: offset order,
                    # so no key's records are ever reordered.
                    isolate = (start + result.isolate[0], start + result.isolate[1])
        except StoreUnavailableError as exc:
            self._outage(records[done:], exc)
        except Interrupted:
            pass  # stopping; the message in progress is redelivered to the partition's next owner

    def _process_one(self, record: Record) -> Outcome:
        """:meth:`Applier.process`, and a last line of defence: an error nobody foresaw (a bug, a
        handler raising something odd while dead-lettering) is stored as a last-resort row naming it,
        so the partition moves on; only an outage or a shutdown escape."""
        try:
            return self.applier.process(record)
        except (StoreUnavailableError, Interrupted):
            raise
        except Exception as exc:
            log.exception(
                "unexpected error group=%s %s; storing it as a last resort", self.applier.group, record.where()
            )
            self.applier.raise_if_store_down(exc)
            return self.applier.last_resort(record, reason=INTERNAL_ERROR, failure=exc, why_refused=exc)

    def _done(self, record: Record, outcome: Outcome) -> None:
        self.tracker.done(record)
        self.stats[outcome.value] += 1
        if self.on_outcome is not None:
            self.on_outcome(record, outcome)

    # -- commits ----------------------------------------------------------------------------------
    def _commit(self, only: Sequence[TopicPartition] | None = None, *, wait: bool = True) -> None:
        """Commit the durable offsets; ``wait=False`` in the steady state (never blocks on a coordinator
        that does not answer), ``wait=True`` on revocation and shutdown, as DESIGN.md asks."""
        offsets = self.tracker.pending(only)
        if not offsets:
            return
        try:
            self.source.commit(offsets, wait=wait)
        except ConsumerError as exc:
            # Kafka trouble: keep the offsets and try again; redelivery is deduplicated by the inbox.
            log.warning("commit failed group=%s: %s", self.applier.group, exc)
            return
        self.tracker.committed(offsets)

    def _revoked(self, partitions: list[TopicPartition]) -> None:
        self._commit(partitions)
        self.tracker.forget(partitions)

    # -- PostgreSQL outage ------------------------------------------------------------------------
    def _store_down(self) -> None:
        if self.on_store_outage is not None:
            self.on_store_outage()

    def _outage(self, undone: Sequence[Record], exc: StoreUnavailableError) -> None:
        self._commit(wait=False)
        self.source.seek(rewind_positions(undone))
        self.source.pause()
        delay = 0.2
        log.error("store unavailable group=%s, paused: %s", self.applier.group, exc)
        self._store_down()
        while not self.stopping.is_set():
            stray = self.source.poll(FETCH_MAX, delay)  # keeps the membership alive; nothing arrives
            if stray:  # a partition assigned before the pause took effect: read it again later
                self.source.seek(rewind_positions(stray))
                self.source.pause()
            if self.applier.store_alive():
                break
            self._store_down()
            delay = min(self.settings.store_backoff_max, delay * 2)
        self.stats["store_outages"] += 1
        self.source.resume()
        log.warning("store back group=%s, resumed", self.applier.group)
