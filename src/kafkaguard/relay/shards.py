"""How many outbox shards a relay instance should own (pure).

Each live instance aims at a fair share, ``ceil(shards / live instances)``: it takes free shards
up to that share and releases shards above it, between rounds, so that instances which started
later (or a standby) get work within one poll interval and a dead instance's shards (freed when
its connection drops) are taken by the survivors. Shards are released only between rounds, after
their claimed rows were removed, so a shard never has two owners publishing at once.
"""

from __future__ import annotations

import math
from collections.abc import Collection


def fair_share(total_shards: int, live_instances: int) -> int:
    """The most shards one instance should hold when ``live_instances`` relays run (at least 1)."""
    return math.ceil(total_shards / max(1, live_instances))


def to_release(held: Collection[int], share: int) -> list[int]:
    """Shards to give back so that at most ``share`` are held (the highest numbers first)."""
    surplus = len(held) - share
    return sorted(held, reverse=True)[:surplus] if surplus > 0 else []


def to_try(held: Collection[int], total_shards: int, share: int, start: int) -> list[int]:
    """Shards not held, in a rotating order from ``start`` (spreads instances' attempts), if below share."""
    if len(held) >= share:
        return []
    owned = set(held)
    return [s for s in ((start + i) % total_shards for i in range(total_shards)) if s not in owned]
