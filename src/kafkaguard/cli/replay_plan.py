"""Decide what ``dead-letters replay`` and ``restore listener`` may do, before anything changes (pure).

An operator action either does what it says or refuses with the reason; it never changes records
it then cannot restore (the defect this module exists for: records reset, "restored 0 of N",
exit 0). The checks:

- the consumer group: a listener dead letter is restored under its own ``consumer_group`` (the
  inbox and the key locks are per group); records of several groups need ``--group``, since each
  group is a service with its own handlers;
- the handlers: every event type the restore will apply (the records, and the other open records
  of their keys, which are applied with them in key order) has a handler (sync or async) in the registry;
- the ids an operator named exist and are open (``pending`` or ``failed``).

The summary of a run is computed from the records' statuses afterwards, so the exit code says
whether everything asked for was restored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from kafkaguard.cli.errors import UsageProblem
from kafkaguard.errors import ConfigurationError
from kafkaguard.logtext import short
from kafkaguard.restore.listener_job import handler_problems

__all__ = ["handler_problems"]  # re-exported: the job decides, the CLI refuses

REPLAYABLE = ("pending", "failed")
"""Statuses ``replay`` resets; ``parked`` records follow their key's head, the rest are closed."""

LISTED = 5  # ids or values named in one message before "..."


@dataclass(frozen=True)
class Candidate:
    """A record ``replay`` would reset: its id, status, key, event type and (listener) group."""

    id: int
    status: str
    key: str | None
    type: str | None
    group: str | None = None


def listing(values: Iterable[object], limit: int = LISTED) -> str:
    """``a, b, c`` for a message: outside values escaped and bounded, at most ``limit`` of them."""
    items = list(values)
    shown = ", ".join(short(v, 60) for v in items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def group_of(candidates: Sequence[Candidate], group: str | None) -> str:
    """The one consumer group the listener ``candidates`` belong to (``group`` when given).

    Raises :class:`UsageProblem` when they span several groups and none was chosen.
    """
    groups = sorted({c.group for c in candidates if c.group is not None})
    if group is not None:
        return group
    if len(groups) == 1:
        return groups[0]
    raise UsageProblem(
        f"the matching listener dead letters belong to {len(groups)} consumer groups ({listing(groups)}): "
        "pass --group to choose one (each group is restored under its own inbox, with its own handlers)"
    )


def check_requested_ids(requested: Sequence[int], candidates: Sequence[Candidate], found: dict[int, str]) -> None:
    """Every id the operator named is among ``candidates``; ``found`` maps the others that exist to
    their status. Raises :class:`ConfigurationError` naming each id that cannot be replayed."""
    have = {c.id for c in candidates}
    problems = []
    for record_id in sorted(set(requested) - have):
        status = found.get(record_id)
        if status is None:
            problems.append(f"{record_id} does not exist (or does not match the other filters)")
        else:
            problems.append(f"{record_id} is {status} (replay takes pending or failed records)")
    if problems:
        raise ConfigurationError("nothing was changed: record " + "; record ".join(problems))


def check_handlers(app: str, group: str, problems: dict[str, str]) -> None:
    """Refuse (:class:`UsageProblem`) when the registry cannot apply some types of ``group``."""
    if not problems:
        return
    named = listing(f"{t} ({why})" for t, why in problems.items())
    raise UsageProblem(
        f"nothing was changed: {app} cannot restore event type(s) {named} of consumer group {short(group, 60)}; "
        "pass the --app of the service that consumes this group"
    )


@dataclass
class Summary:
    """What a replay achieved, from the records' statuses after it ran."""

    store: str
    group: str | None
    reset: list[int]
    restored: list[int] = field(default_factory=list)
    not_restored: list[tuple[int, str, str | None]] = field(default_factory=list)  # id, status, error class
    also_restored: int = 0  # other open records of the same keys, applied with them in key order

    @property
    def complete(self) -> bool:
        return not self.not_restored

    def line(self) -> str:
        """One line for the operator (the exit code is 0 exactly when :attr:`complete`)."""
        where = f"{self.store} dead letters" + (f" of group {short(self.group, 60)}" if self.group else "")
        text = f"replay of {where}: {len(self.restored)} of {len(self.reset)} restored"
        if self.also_restored:
            text += f" (and {self.also_restored} parked record(s) of the same keys)"
        if self.not_restored:
            details = listing(
                f"#{i} {status}" + (f" ({error})" if error else "") for i, status, error in self.not_restored
            )
            text += f"; not restored: {details}; see `kafkaguard dead-letters show ID --store {self.store}`"
        return text


def summarise(
    store: str,
    group: str | None,
    reset: Sequence[int],
    statuses: dict[int, tuple[str, str | None]],
    restored_ids: Iterable[int],
) -> Summary:
    """The summary of a replay of ``reset``: ``statuses`` maps each id to (status, error class) now;
    ``restored_ids`` are every id the restore reported restored (the others of the same keys too)."""
    summary = Summary(store, group, list(reset))
    asked = set(reset)
    for record_id in reset:
        status, error = statuses.get(record_id, ("missing", None))
        if status == "restored":
            summary.restored.append(record_id)
        else:
            summary.not_restored.append((record_id, status, error))
    summary.also_restored = len(set(restored_ids) - asked)
    return summary
