"""Part 6: ``POST /api/posts`` requests/s of the dailyfeed content service, with and without the outbox insert.

The service runs as in production (uvicorn, one worker process, its own async engine with a pool
of 20) against this bench's PostgreSQL (``synchronous_commit=on``). Load comes from ``wrk``
(installed from Debian's package when missing): a C load generator takes far less of the two cores
than a Python client would, so more of the machine is left to the service being measured. Closed
loop, ``connections`` concurrent keep-alive connections, one JSON post per request; the two app
variants alternate ``rounds`` times after a warm-up, so both see the same machine.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from examples.dailyfeed.content.models import Base as ContentBase

from bench.common import REPORT_DIR, Report, Stack, median, new_schema, python_env, stop, wait_until
from kafkaguard.db.engine import sync_engine
from kafkaguard.devstack import process

LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"author_id": 1001, "title": "a bench post", "body": "%s"}'
""" % ("x" * 120)


def ensure_wrk() -> str:
    """Path of ``wrk``; installs Debian's package when missing (needs root, as `make` does elsewhere)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError("wrk is missing: run `sudo apt-get install -y wrk`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, capture_output=True, check=False).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, capture_output=True, check=True)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("apt-get installed wrk but it is not on PATH")
    return found


def start_app(variant: str, url: str, schema: str, bootstrap: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = python_env(
        DAILYFEED_DATABASE_URL=url.split("?")[0], DAILYFEED_CONTENT_SCHEMA=schema, DAILYFEED_BOOTSTRAP_SERVERS=bootstrap
    )
    cmd = [sys.executable, "-m", "uvicorn", "--factory", f"bench.content_apps:{variant}", "--port", str(port)]
    cmd += ["--host", "127.0.0.1", "--workers", "1", "--log-level", "warning", "--no-access-log"]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def healthy() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, 60, f"the {variant} app to answer", 0.2)
    return proc


def wrk(port: int, seconds: float, connections: int, script: Path) -> dict[str, float]:
    cmd = [ensure_wrk(), "-t", "1", "-c", str(connections), "-d", f"{seconds:.0f}s", "--latency", "-s", str(script)]
    out = subprocess.run(
        [*cmd, f"http://127.0.0.1:{port}/api/posts"], capture_output=True, text=True, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise RuntimeError(f"wrk saw failures: {bad.group(0) if bad else ''} {errors.group(0) if errors else ''}")

    def ms(label: str) -> float:
        m = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return {"rps": rps, "requests": total, "p50_ms": ms("50"), "p99_ms": ms("99")}


def run(stack: Stack, *, seconds: float, connections: int, rounds: int, profile: str) -> Report:
    logs = REPORT_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    script = logs / "post.lua"
    script.write_text(LUA)
    db = new_schema(stack, "w")
    engine = sync_engine(stack.server.url(), schema=db.schema)
    ContentBase.metadata.create_all(engine)
    engine.dispose()
    samples: dict[str, list[dict[str, float]]] = {"with_outbox": [], "without_outbox": []}
    port = process.free_ports(1)[0]
    for _ in range(rounds):
        for variant in samples:
            app = start_app(variant, stack.server.url(), db.schema, stack.bootstrap, port, logs / "content-app.log")
            try:
                wrk(port, 1, connections, script)  # warm-up: pool filled, code paths hot
                samples[variant].append(wrk(port, seconds, connections, script))
            finally:
                stop(app)
    posts = db.scalar("SELECT count(*) FROM posts")
    outbox = db.scalar("SELECT count(*) FROM outbox")
    report = Report(
        "write_path",
        f"Write path — POST /api/posts, dailyfeed content service (uvicorn, 1 worker), wrk {connections} connections, "
        f"{seconds:.0f} s × {rounds} interleaved rounds",
        ["variant", "requests/s", "× without", "p50 ms", "p99 ms", "rounds (req/s)"],
    )
    med = {k: median([s["rps"] for s in v]) for k, v in samples.items()}
    for variant, label in (("without_outbox", "without the outbox insert"), ("with_outbox", "with the outbox insert")):
        v = samples[variant]
        report.add(
            label, med[variant], med[variant] / med["without_outbox"], median([s["p50_ms"] for s in v]),
            median([s["p99_ms"] for s in v]), ", ".join(f"{s['rps']:,.0f}" for s in v),
        )  # fmt: skip
    report.notes.append(f"rows written: {posts:,} posts, {outbox:,} outbox rows (no relay running); load by wrk")
    report.data = {"samples": samples, "median_rps": med, "ratio": med["with_outbox"] / med["without_outbox"]}
    return report
