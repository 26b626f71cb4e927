"""FerretDB 1.24 with its SQLite backend: the MongoDB-wire document store of the dev stack.

MongoDB's own server is not in the reachable registries; FerretDB speaks the MongoDB wire protocol
and is a Go module, so it is built with ``go install`` into the run directory once (like promtool,
:func:`kafkaguard.devstack.tools.ensure_promtool`). The server listens on 127.0.0.1 only, keeps its
SQLite files, state and log under ``home``, and has telemetry disabled. The SQLite backend has no
authentication: the dev URL carries no password, so there is nothing secret to log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kafkaguard.devstack import process
from kafkaguard.devstack.tools import require
from kafkaguard.errors import DevStackError

FERRETDB_MODULE = "github.com/FerretDB/FerretDB/cmd/ferretdb"
FERRETDB_VERSION = "v1.24.2"
FERRETDB_BUILD_TIMEOUT = 1800.0
"""Seconds a first build may take (a few minutes on 2 cores; downloads included)."""

DATABASE = "kafkaguard"


def ferretdb_path(run_dir: Path, version: str = FERRETDB_VERSION) -> Path:
    """Where :func:`ensure_ferretdb` puts FerretDB ``version`` in ``run_dir``."""
    return run_dir / "tools" / f"ferretdb-{version}" / "ferretdb"


def ensure_ferretdb(run_dir: Path, *, version: str = FERRETDB_VERSION) -> Path:
    """Return ``<run dir>/tools/ferretdb-<version>/ferretdb``, built with ``go install`` when absent.

    Idempotent: later calls return at once. The binary is moved into place only when ``go install``
    succeeded, so an interrupted build leaves nothing that counts.

    Raises :class:`ToolMissingError` without ``go`` on PATH, :class:`DevStackError` when the build
    fails (its output is in ``<run dir>/logs/ferretdb-build.log``) or takes longer than
    :data:`FERRETDB_BUILD_TIMEOUT`.
    """
    target = ferretdb_path(run_dir, version)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = require("go")
    staging = target.parent.with_name(target.parent.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    env = {**os.environ, "CGO_ENABLED": "0"}
    log = run_dir / "logs" / "ferretdb-build.log"
    # `go install module@version` builds a binary that panics at start: the module zip lacks the
    # generated build/version/version.txt. So: download the module, copy it, write that file, build.
    source = staging / "src"
    try:
        got = subprocess.run(
            [go, "mod", "download", "-json", f"{FERRETDB_MODULE.rsplit('/cmd/', 1)[0]}@{version}"],
            env=env, capture_output=True, text=True, check=False, timeout=FERRETDB_BUILD_TIMEOUT,
        )  # fmt: skip
        if got.returncode == 0:
            shutil.copytree(json.loads(got.stdout)["Dir"], source)
            for path in source.rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)
            (source / "build" / "version" / "version.txt").write_text(version + "\n")
            result = subprocess.run(
                [go, "build", "-o", str(staging / "ferretdb"), "./cmd/ferretdb"],
                cwd=source, env=env, capture_output=True, text=True, check=False, timeout=FERRETDB_BUILD_TIMEOUT,
            )  # fmt: skip
        else:
            result = got
    except subprocess.TimeoutExpired as exc:
        raise DevStackError(f"building FerretDB {version} took longer than {FERRETDB_BUILD_TIMEOUT:.0f} s") from exc
    built = staging / "ferretdb"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0 or not built.is_file():
        raise DevStackError(f"building FerretDB {version} with `go install` failed; read {log}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(built, target)
    shutil.rmtree(staging, ignore_errors=True)
    return target


def server_argv(binary: Path, home: Path, port: int, debug_port: int) -> list[str]:
    """FerretDB's command line for a server under ``home`` (pure: unit-tested)."""
    return [
        str(binary),
        f"--listen-addr=127.0.0.1:{port}",
        "--handler=sqlite",
        f"--sqlite-url=file:{home / 'data'}/",
        f"--state-dir={home / 'state'}",
        f"--debug-addr=127.0.0.1:{debug_port}",
        "--telemetry=disable",
        "--log-level=warn",
    ]


@dataclass
class FerretDbServer:
    """A FerretDB server whose files live under ``home``; ``pid`` is ``ferretdb``'s.

    ``run_dir`` is where the binary is built (shared by every server of that run dir).
    """

    run_dir: Path
    home: Path
    port: int
    debug_port: int
    pid: int | None = None

    @property
    def log_file(self) -> Path:
        return self.home / "ferretdb.log"

    def url(self, database: str = DATABASE) -> str:
        """The ``mongodb://`` URL of the server's ``database`` (no credentials: none are needed)."""
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    def _marker(self) -> str:
        return f"--listen-addr=127.0.0.1:{self.port}"

    def is_running(self) -> bool:
        """Whether this server's ``ferretdb`` runs (adopting one another process started)."""
        if self.pid is not None and process.pid_matches(self.pid, self._marker()):
            return True
        adopted = process.find_pid(f"ferretdb {self._marker()}")
        if adopted is not None:
            self.pid = adopted
        return adopted is not None

    def answers(self) -> bool:
        """Return True when pymongo's ``ping`` command answers within 2 s."""
        import pymongo
        from pymongo.errors import PyMongoError

        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
            self.url(), serverSelectionTimeoutMS=2000, connectTimeoutMS=1000
        )
        try:
            client.admin.command("ping")
        except PyMongoError:
            return False
        finally:
            client.close()
        return True

    def start(self, *, timeout: float = 60.0) -> None:
        """Build FerretDB if needed, start it and wait until ``ping`` answers; idempotent."""
        if self.is_running():
            return
        binary = ensure_ferretdb(self.run_dir)
        for sub in ("data", "state"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        process.require_free_port(self.port, "FerretDB")
        process.require_free_port(self.debug_port, "FerretDB's debug handler")
        self.pid = process.spawn(server_argv(binary, self.home, self.port, self.debug_port), log=self.log_file)
        process.wait_until(
            self.answers,
            timeout=timeout,
            what=f"FerretDB on 127.0.0.1:{self.port}",
            log=self.log_file,
            interval=0.1,
            alive=lambda: self.pid is not None and process.is_alive(self.pid),
        )

    def stop(self) -> None:
        """Clean shutdown (SIGTERM); SQLite keeps every acknowledged write."""
        if self.pid is not None:
            process.terminate(self.pid, self._marker(), timeout=30, sig=signal.SIGTERM)
        self.pid = None

    def kill(self) -> None:
        """SIGKILL, as a process crash: what SQLite committed is in its files (the journal is replayed at start)."""
        if self.pid is not None:
            process.kill_hard(self.pid, self._marker())
            process.reap(self.pid)
            self.pid = None

    def restart(self, *, timeout: float = 60.0) -> None:
        """Stop (if running) and start again with the data kept."""
        self.stop()
        self.start(timeout=timeout)
