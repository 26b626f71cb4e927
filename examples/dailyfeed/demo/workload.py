"""The demo's workload: concurrent clients writing posts and comments through the content API.

Each client works on its own posts (so every key is written sequentially, as DESIGN.md asks of
workloads whose order is checked) and follows a seeded random script: create a post, comment,
edit, delete. A request that fails (503 while the dead-letter store is also down, a timeout) is
counted and not retried: the write did not commit, so it must not appear downstream.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx


@dataclass
class WorkloadReport:
    ok: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)

    @property
    def total_ok(self) -> int:
        return sum(self.ok.values())


async def _client(
    base: str, client_id: int, writes: int, rng: random.Random, report: WorkloadReport, progress: Callable[[], None]
) -> None:
    member = 1000 + client_id
    posts: list[int] = []
    comments: list[tuple[int, int]] = []
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        done = 0
        while done < writes:
            roll = rng.random()
            if not posts or roll < 0.25:
                op, req = (
                    "post.created",
                    http.post("/api/posts", json={"author_id": member, "title": f"t{done}", "body": "hello"}),
                )
            elif roll < 0.55:
                op, req = (
                    "comment.created",
                    http.post(f"/api/posts/{rng.choice(posts)}/comments", json={"author_id": member, "body": "nice"}),
                )
            elif roll < 0.7:
                op, req = (
                    "post.updated",
                    http.put(f"/api/posts/{rng.choice(posts)}", json={"author_id": member, "body": f"edit {done}"}),
                )
            elif roll < 0.85 and comments:
                pid, cid = rng.choice(comments)
                op, req = (
                    "comment.updated",
                    http.put(f"/api/posts/{pid}/comments/{cid}", json={"author_id": member, "body": f"edit {done}"}),
                )
            elif roll < 0.93 and comments:
                pid, cid = comments.pop(rng.randrange(len(comments)))
                op, req = (
                    "comment.deleted",
                    http.delete(f"/api/posts/{pid}/comments/{cid}", params={"author_id": member}),
                )
            elif len(posts) > 2:
                pid = posts.pop(rng.randrange(len(posts)))
                comments = [c for c in comments if c[0] != pid]
                op, req = "post.deleted", http.delete(f"/api/posts/{pid}", params={"author_id": member})
            else:
                continue
            try:
                resp = await req
            except httpx.HTTPError:
                report.failed[op] += 1
                done += 1
                progress()
                continue
            if resp.status_code in (200, 201):
                report.ok[op] += 1
                body = resp.json()
                if op == "post.created":
                    posts.append(int(body["id"]))
                elif op == "comment.created":
                    comments.append((int(body["post_id"]), int(body["id"])))
            else:
                report.failed[op] += 1
            done += 1
            progress()


async def run_workload(
    base: str, *, clients: int, writes: int, seed: int, progress: Callable[[], None]
) -> WorkloadReport:
    """Run ``writes`` writes split over ``clients`` concurrent clients; deterministic per ``seed``."""
    report = WorkloadReport()
    per = [writes // clients + (1 if i < writes % clients else 0) for i in range(clients)]
    await asyncio.gather(
        *(_client(base, i, n, random.Random(seed * 1000 + i), report, progress) for i, n in enumerate(per))
    )
    return report
