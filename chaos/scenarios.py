"""The fault scenarios: each one injects a fault into a running :class:`RunContext` and heals it.

A scenario's ``inject`` runs while the writer writes; it waits for a share of the planned writes
(polled from the database), breaks something, lets the fault last (the one timed wait allowed),
repairs it and calls ``mark_healed`` — recovery time is measured from there. ``modes`` lists the
publish modes the fault means something for (a broker fault does not touch ``http``, which does not
use Kafka; ``relay-kill`` concerns only ``outbox``, the one mode with a relay).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chaos.injections import duplicate_messages, poison_messages
from chaos.run import RunContext
from kafkaguard.devstack.process import poll, wait_until
from kafkaguard.devstack.services import ServiceProcess as Proc
from kafkaguard.publisher.settings import PublishMode as M

ALL = (M.OUTBOX, M.DIRECT, M.BACKGROUND, M.HTTP)
KAFKA = (M.OUTBOX, M.DIRECT, M.BACKGROUND)


@dataclass(frozen=True)
class Scenario:
    """One fault: its name, what it does, the modes it applies to and the cluster size it needs."""

    name: str
    description: str
    inject: Callable[[RunContext], None]
    modes: tuple[M, ...] = KAFKA
    brokers: int = 1
    proxied: bool = False  # runs on the single broker behind the suite's TCP proxy


def broker_kill(ctx: RunContext) -> None:
    ctx.wait_progress(0.3)
    ctx.kafka.node(1).kill()
    ctx.fault(ctx.profile.fault_seconds)
    ctx.kafka.restart(1)
    ctx.mark_healed()


def broker_pause(ctx: RunContext) -> None:
    ctx.wait_progress(0.3)
    ctx.kafka.node(1).pause()
    ctx.fault(ctx.profile.pause_seconds)
    ctx.kafka.node(1).resume()
    ctx.mark_healed()


def _brokers_down(ctx: RunContext, nodes: tuple[int, ...]) -> None:
    ctx.wait_progress(0.3)
    for n in nodes:
        ctx.kafka.node(n).kill()
    ctx.fault(ctx.profile.fault_seconds)
    for n in nodes:  # start together: two of three nodes are needed for the controller quorum
        ctx.kafka.node(n).launch()
    for n in nodes:
        ctx.kafka.node(n).wait_ready(expect_brokers=3)
    ctx.mark_healed()


def one_of_three_down(ctx: RunContext) -> None:
    _brokers_down(ctx, (2,))


def two_of_three_down(ctx: RunContext) -> None:
    _brokers_down(ctx, (2, 3))


def pg_down_publisher(ctx: RunContext) -> None:
    ctx.wait_progress(0.3)
    ctx.db_publisher.server.kill()
    ctx.fault(ctx.profile.fault_seconds)
    ctx.db_publisher.server.start()
    ctx.mark_healed()


def pg_down_consumer(ctx: RunContext) -> None:
    ctx.wait_progress(0.3)
    ctx.db_consumer.server.kill()
    ctx.fault(ctx.profile.fault_seconds)
    ctx.db_consumer.server.start()
    ctx.mark_healed()


def _kill_repeatedly(ctx: RunContext, proc: Proc, at: tuple[float, ...] = (0.2, 0.4, 0.6)) -> None:
    for share in at:
        ctx.wait_progress(share)
        proc.kill()
        proc.start()
    ctx.mark_healed()


def relay_kill(ctx: RunContext) -> None:
    _kill_repeatedly(ctx, ctx.procs["relay"])


def consumer_kill(ctx: RunContext) -> None:
    _kill_repeatedly(ctx, ctx.procs["endpoint" if ctx.mode is M.HTTP else "consumer"])


def publisher_kill(ctx: RunContext) -> None:
    """SIGKILL the writing process right after commits, while deliveries are still in flight.

    For the Kafka modes the broker is frozen for a moment first, so background deliveries queue up
    after their commits (the loss window DESIGN.md describes); the writer is started again and
    resumes its plan after the last recorded attempt.
    """
    ctx.wait_progress(0.4)
    if ctx.mode is not M.HTTP:
        ctx.kafka.node(1).pause()
        ctx.fault(2.0)
    ctx.procs["writer"].kill()
    if ctx.mode is not M.HTTP:
        ctx.kafka.node(1).resume()
    ctx.procs["writer"].start()
    ctx.mark_healed()


def rebalance_storm(ctx: RunContext) -> None:
    """Consumers join the group, take partitions, and leave (graceful stops and SIGKILLs alternating)."""
    ctx.wait_progress(0.1)
    for n in range(6):
        extra = ctx.consumer_proc(f"consumer-extra-{n}")
        ctx.extra_consumers.append(extra)
        extra.start()
        poll(lambda e=extra: e.log.exists() and "assigned" in e.log.read_text(errors="replace"), 8)  # type: ignore[misc]
        if n % 2:
            extra.kill()
        else:
            extra.stop()
    ctx.notes.append("6 extra consumers joined and left (3 SIGKILLed)")
    ctx.mark_healed()


def duplicates(ctx: RunContext) -> None:
    ctx.wait_progress(0.6)
    copies = duplicate_messages(ctx.bootstrap, ctx.topic)
    ctx.notes.append(f"{copies} duplicate messages injected")
    ctx.mark_healed()


def poison(ctx: RunContext) -> None:
    ctx.wait_progress(0.5)
    sent = poison_messages(ctx.bootstrap, ctx.topic)
    ctx.notes.append(f"{sent} poison messages injected (expected as listener dead letters)")
    ctx.mark_healed()


def network_cut(ctx: RunContext) -> None:
    """Reset every connection between the services and the broker, refuse new ones, then heal."""
    proxy = ctx.stack.proxy
    assert proxy is not None, "network-cut runs on the proxied cluster"
    ctx.wait_progress(0.3)
    proxy.cut()
    ctx.fault(ctx.profile.fault_seconds)
    proxy.heal()
    ctx.mark_healed()


def restore_kill(ctx: RunContext) -> None:
    """Kill the broker so publisher dead letters pile up, then SIGKILL a restore job mid-run."""
    broker_kill(ctx)
    ctx.wait_writer()
    job = ctx.restore_proc()
    job.start()
    wait_until(lambda: ctx.restored() > 0 or not job.alive(), timeout=60, what="the restore job to restore")
    job.kill()
    ctx.notes.append(f"restore job killed after {ctx.restored()} restored")


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("broker-kill", "broker kill -9, restart after the outage", broker_kill),
    Scenario("broker-pause", "broker frozen with SIGSTOP, then SIGCONT", broker_pause),
    Scenario("one-of-three-down", "1 of 3 brokers killed (acks=all, min ISR 2)", one_of_three_down, brokers=3),
    Scenario("two-of-three-down", "2 of 3 brokers killed (below min ISR)", two_of_three_down, brokers=3),
    Scenario("network-cut", "services <-> broker connections reset and refused", network_cut, proxied=True),
    Scenario("pg-down-publisher", "publisher's database kill -9, restart", pg_down_publisher, ALL),
    Scenario("pg-down-consumer", "consumer's database kill -9, restart", pg_down_consumer, ALL),
    Scenario("relay-kill", "relay SIGKILLed 3 times mid-batch", relay_kill, (M.OUTBOX,)),
    Scenario("consumer-kill", "consumer SIGKILLed 3 times between apply and commit", consumer_kill, ALL),
    Scenario("publisher-kill", "writing process SIGKILLed right after commits", publisher_kill, ALL),
    Scenario("rebalance-storm", "6 consumers join and leave the group", rebalance_storm),
    Scenario("restore-kill", "publisher restore job SIGKILLed mid-run", restore_kill, (M.DIRECT, M.BACKGROUND)),
    Scenario("duplicates", "every 10th message produced again by a plain client", duplicates),
    Scenario("poison", "20 undecodable / unknown messages from a plain client", poison),
)
BY_NAME = {s.name: s for s in SCENARIOS}
