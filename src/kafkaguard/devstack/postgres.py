"""PostgreSQL 15 from Debian's package, in a data directory of our own, on loopback.

The server runs as an unprivileged system user (PostgreSQL refuses to run as root), listens on
127.0.0.1 only, authenticates TCP clients with a password generated at ``initdb`` (kept in the run
folder, mode 0600), and has ``wal_level=logical`` so Debezium can read it later. Durability
settings are PostgreSQL's defaults, stated explicitly: ``fsync=on``, ``synchronous_commit=on``.

A server with ``tls`` (the secured stack) has ``ssl=on`` with a certificate from the stack's CA
(SANs ``127.0.0.1`` and ``localhost``) and only ``hostssl`` lines in ``pg_hba.conf``: a TCP client
without TLS is refused, and :meth:`PostgresServer.url` asks for ``sslmode=verify-full``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from kafkaguard.devstack import process
from kafkaguard.devstack.secure import Material
from kafkaguard.devstack.tools import require
from kafkaguard.errors import DevStackError

PG_MAJOR = 15
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
SERVICE_USER = "kafkaguard-pg"
DATABASE = "kafkaguard"
SUPERUSER = "kafkaguard"


def ensure_postgres_installed() -> Path:
    """Return PostgreSQL 15's bin folder, installing Debian's ``postgresql-15`` when it is missing."""
    if (PG_BIN / "postgres").exists():
        return PG_BIN
    apt = require("apt-get")
    if os.geteuid() != 0:
        raise DevStackError(
            f"PostgreSQL {PG_MAJOR} is not installed; run `sudo {apt} install -y postgresql-{PG_MAJOR}`"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", f"postgresql-{PG_MAJOR}"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevStackError(f"`apt-get install postgresql-{PG_MAJOR}` failed:\n{result.stderr[-2000:]}")
    if not (PG_BIN / "postgres").exists():
        raise DevStackError(f"postgresql-{PG_MAJOR} installed but {PG_BIN / 'postgres'} is missing")
    return PG_BIN


def _service_account(user: str = SERVICE_USER) -> tuple[int, int] | None:
    """Return (uid, gid) to run a server as; create the system ``user`` when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path, account: tuple[int, int] | None) -> None:
    if account is None:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, *account)
        for name in dirs + files:
            os.chown(os.path.join(root, name), *account, follow_symlinks=False)


@dataclass
class PostgresServer:
    """A PostgreSQL 15 server whose files live under ``home``; ``pid`` is the postmaster's."""

    home: Path
    port: int
    pid: int | None = None
    tls: Material | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def password_file(self) -> Path:
        return self.home / "password"

    def url(self, *, driver: str = "postgresql+psycopg", database: str = DATABASE) -> str:
        """Return the SQLAlchemy URL of the server's kafkaguard database (with its password)."""
        password = self.password_file.read_text().strip()
        url = f"{driver}://{SUPERUSER}:{password}@127.0.0.1:{self.port}/{database}"
        if self.tls is not None:
            url += f"?sslmode=verify-full&sslrootcert={self.tls.ca_file}"
        return url

    def conninfo(self, database: str = DATABASE) -> str:
        """Return a libpq connection string (for psycopg)."""
        password = self.password_file.read_text().strip()
        info = f"host=127.0.0.1 port={self.port} user={SUPERUSER} password={password} dbname={database}"
        if self.tls is not None:
            info += f" sslmode=verify-full sslrootcert={self.tls.ca_file}"
        return info

    def _marker(self) -> str:
        return str(self.data_dir)

    def _init(self, bin_dir: Path, account: tuple[int, int] | None) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(18) + "\n")
            self.password_file.chmod(0o600)
        _chown_tree(self.home, account)
        argv = [
            str(bin_dir / "initdb"),
            "-D", str(self.data_dir),
            "-U", SUPERUSER,
            f"--pwfile={self.password_file}",
            "--auth-local=trust",  # the socket lives in our own 0700 folder
            "--auth-host=scram-sha-256",
            "-E", "UTF8",
            "--no-locale",
        ]  # fmt: skip
        result = subprocess.run(
            argv, capture_output=True, text=True, check=False,
            user=account[0] if account else None, group=account[1] if account else None,
            extra_groups=[] if account else None,
        )  # fmt: skip
        if result.returncode != 0:
            self.log_file.write_text(result.stdout + result.stderr)
            raise DevStackError(f"initdb failed; read {self.log_file}")
        (self.data_dir / "kafkaguard.conf").write_text(
            "\n".join(
                [
                    "listen_addresses = '127.0.0.1'",
                    f"port = {self.port}",
                    f"unix_socket_directories = '{self.home}'",
                    "wal_level = logical",
                    "max_wal_senders = 10",
                    "max_replication_slots = 10",
                    "max_slot_wal_keep_size = 1GB",  # a stopped Debezium cannot fill the disk
                    "max_connections = 300",
                    "shared_buffers = 256MB",
                    "fsync = on",
                    "synchronous_commit = on",
                    "logging_collector = off",
                    "",
                ]
            )
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\ninclude = 'kafkaguard.conf'\n")
        if self.tls is not None:
            self._enable_tls(self.tls)
        _chown_tree(self.data_dir, account)

    def _enable_tls(self, tls: Material) -> None:
        """``ssl=on`` with the stack CA's certificate, and TCP logins over TLS only (``hostssl``)."""
        cred = tls.credential("postgres", server=True)
        for source, name in ((cred.certificate, "server.crt"), (cred.key, "server.key")):
            target = self.data_dir / name
            target.write_bytes(source.read_bytes())
            target.chmod(0o600)  # PostgreSQL refuses a key others can read
        with (self.data_dir / "kafkaguard.conf").open("a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        hba = self.data_dir / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        hba.write_text("\n".join("hostssl" + line[4:] if line.startswith("host ") else line for line in lines) + "\n")

    def is_running(self) -> bool:
        """Whether the postmaster runs (adopting it when another process restarted it)."""
        if self.pid is not None and process.pid_matches(self.pid, self._marker()):
            return True
        adopted = process.find_pid(f"postgres -D {self.data_dir}")
        if adopted is not None:
            self.pid = adopted
        return adopted is not None

    def answers(self) -> bool:
        """Return True when the kafkaguard database (or, before it exists, the server) accepts a query."""
        try:
            with psycopg.connect(self.conninfo("postgres"), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def start(self, *, timeout: float = 60.0) -> None:
        """Initialise on first use, start the server and wait until it answers; idempotent."""
        if self.is_running():
            return
        bin_dir = ensure_postgres_installed()
        account = _service_account()
        self._init(bin_dir, account)
        process.require_free_port(self.port, "PostgreSQL")
        if self.log_file.exists():
            _chown_tree(self.log_file, account)
        self.pid = process.spawn(
            [str(bin_dir / "postgres"), "-D", str(self.data_dir)],
            log=self.log_file,
            user=account[0] if account else None,
            group=account[1] if account else None,
        )
        process.wait_until(
            self.answers,
            timeout=timeout,
            what=f"PostgreSQL on 127.0.0.1:{self.port}",
            log=self.log_file,
            interval=0.1,
            alive=lambda: self.pid is not None and process.is_alive(self.pid),
        )
        self._create_database()

    def _create_database(self) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open transactions roll back, committed data is kept."""
        if self.pid is not None:
            process.terminate(self.pid, self._marker(), timeout=30, sig=signal.SIGINT)

    def kill(self) -> None:
        """Kill the postmaster and its backends with SIGKILL, as a machine crash would."""
        if self.pid is None or not self.is_running():
            return
        backends = process.children_of(self.pid)
        process.kill_hard(self.pid, self._marker())
        for child in backends:
            process.signal_pid(child, signal.SIGKILL)
        process.wait_until(
            lambda: all(not process.process_state(c) or process.process_state(c) == "Z" for c in backends),
            timeout=10,
            what="PostgreSQL backends to exit after kill -9",
        )

    def restart(self, *, timeout: float = 60.0) -> None:
        """Stop (if running) and start again with the data kept."""
        self.stop()
        self.start(timeout=timeout)
