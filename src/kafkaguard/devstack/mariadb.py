"""MariaDB 10.11 from Debian's package, in a data directory of our own, on loopback.

Like :mod:`kafkaguard.devstack.postgres`: the server runs as an unprivileged system user (when we
are root; ``mariadbd`` refuses root), listens on 127.0.0.1 only, and its socket, option file, log
and data live under ``home``. On first start the bootstrap accounts of ``mariadb-install-db`` (root
without a password) are closed: root gets the generated password, and the ``kafkaguard`` account
(every privilege, as the PostgreSQL superuser of the dev stack has) logs in with it over TCP. The
password is kept in ``home/password`` (mode 0600) and never logged.

The binlog is on, in ``ROW`` format with full row images (``binlog_row_image=FULL``) and a
``server_id``: what Debezium's MySQL/MariaDB connector needs. Durability is explicit:
``innodb_flush_log_at_trx_commit=1`` and ``sync_binlog=1``.

Two server defaults are chosen for kafkaguard's semantics: the collation is ``utf8mb4_bin`` (keys,
groups and topics compare byte for byte, as in PostgreSQL; MariaDB's default collation would make
``"A"`` and ``"a"`` one key), and the session time zone is UTC (``DATETIME`` values are UTC).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafkaguard.devstack import process
from kafkaguard.devstack.postgres import _chown_tree, _service_account
from kafkaguard.devstack.tools import require
from kafkaguard.errors import DevStackError

PACKAGE = "mariadb-server"
MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = Path("/usr/bin/mariadb-install-db")
SERVICE_USER = "kafkaguard-mariadb"
DATABASE = "kafkaguard"
USER = "kafkaguard"
SERVER_ID = 1
SYNC_DRIVER = "pymysql"
ASYNC_DRIVER = "aiomysql"


def ensure_mariadb_installed() -> Path:
    """Return ``mariadbd``'s path, installing Debian's ``mariadb-server`` when it is missing.

    The package's own service is not started (a ``policy-rc.d`` that forbids it is the norm in
    containers; without one, stop it: this stack never uses port 3306).
    """
    if MARIADBD.exists() and INSTALL_DB.exists():
        return MARIADBD
    apt = require("apt-get")
    if os.geteuid() != 0:
        raise DevStackError(f"MariaDB is not installed; run `sudo {apt} install -y {PACKAGE}`")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [apt, "install", "-y", "-q", PACKAGE]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run([apt, "update", "-q"], env=env, capture_output=True, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevStackError(f"`apt-get install {PACKAGE}` failed:\n{result.stderr[-2000:]}")
    if not MARIADBD.exists():
        raise DevStackError(f"{PACKAGE} installed but {MARIADBD} is missing")
    return MARIADBD


def options_file(home: Path, port: int) -> str:
    """The ``[mariadbd]`` option file of a server under ``home`` on ``port`` (pure: unit-tested)."""
    lines = [
        "[mariadbd]",
        f"datadir = {home / 'data'}",
        f"socket = {home / 'mariadb.sock'}",
        f"pid-file = {home / 'mariadb.pid'}",
        f"log-error = {home / 'mariadb.log'}",
        f"port = {port}",
        "bind-address = 127.0.0.1",
        "skip-networking = 0",
        "skip-name-resolve",  # accounts are matched by address: 127.0.0.1 and the socket's localhost
        # the binlog, as Debezium reads it: every row change, with every column before and after
        f"log-bin = {home / 'binlog' / 'mariadb-bin'}",
        "binlog_format = ROW",
        "binlog_row_image = FULL",
        f"server_id = {SERVER_ID}",
        "binlog_expire_logs_seconds = 604800",  # a week: a stopped Debezium cannot fill the disk forever
        "sync_binlog = 1",
        "innodb_flush_log_at_trx_commit = 1",
        "character_set_server = utf8mb4",
        "collation_server = utf8mb4_bin",  # byte-for-byte keys, as in PostgreSQL
        "default_time_zone = '+00:00'",
        "max_connections = 300",
        "",
    ]
    return "\n".join(lines)


@dataclass
class MariaDbServer:
    """A MariaDB 10.11 server whose files live under ``home``; ``pid`` is ``mariadbd``'s."""

    home: Path
    port: int
    pid: int | None = None

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config_file(self) -> Path:
        return self.home / "my.cnf"

    @property
    def socket(self) -> Path:
        return self.home / "mariadb.sock"

    @property
    def log_file(self) -> Path:
        return self.home / "mariadb.log"

    @property
    def password_file(self) -> Path:
        return self.home / "password"

    @property
    def _accounts_marker(self) -> Path:
        """Written once the bootstrap accounts are closed and kafkaguard's exists (:meth:`_secure`)."""
        return self.home / "accounts-ready"

    def password(self) -> str:
        return self.password_file.read_text().strip()

    def url(self, *, driver: str = SYNC_DRIVER, database: str = DATABASE) -> str:
        """Return the SQLAlchemy URL of the server's kafkaguard database (with its password):
        ``mysql+pymysql://`` by default, ``driver="aiomysql"`` for an async engine."""
        return f"mysql+{driver}://{USER}:{self.password()}@127.0.0.1:{self.port}/{database}?charset=utf8mb4"

    def connect_kwargs(self, database: str | None = DATABASE) -> dict[str, Any]:
        """``pymysql.connect()`` arguments for the kafkaguard account over TCP."""
        kwargs: dict[str, Any] = {
            "host": "127.0.0.1", "port": self.port, "user": USER, "password": self.password(),
            "charset": "utf8mb4", "connect_timeout": 2,
        }  # fmt: skip
        if database is not None:
            kwargs["database"] = database
        return kwargs

    def _marker(self) -> str:
        return f"--defaults-file={self.config_file}"

    def _init(self, account: tuple[int, int] | None) -> None:
        if (self.data_dir / "mysql").is_dir():
            return
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        if not self.password_file.exists():
            self.password_file.write_text(secrets.token_urlsafe(18) + "\n")
            self.password_file.chmod(0o600)
        self.config_file.write_text(options_file(self.home, self.port))
        (self.home / "binlog").mkdir(exist_ok=True)
        _chown_tree(self.home, account)
        argv = [
            str(INSTALL_DB),
            self._marker(),  # must come first
            "--auth-root-authentication-method=normal",  # root without a password until _secure()
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        result = subprocess.run(
            argv, capture_output=True, text=True, check=False,
            user=account[0] if account else None, group=account[1] if account else None,
            extra_groups=[] if account else None,
        )  # fmt: skip
        if result.returncode != 0:
            self.log_file.write_text(result.stdout + result.stderr)
            raise DevStackError(f"mariadb-install-db failed; read {self.log_file}")

    def is_running(self) -> bool:
        """Whether ``mariadbd`` runs (adopting it when another process restarted it)."""
        if self.pid is not None and process.pid_matches(self.pid, self._marker()):
            return True
        adopted = process.find_pid(f"{MARIADBD} {self._marker()}")
        if adopted is not None:
            self.pid = adopted
        return adopted is not None

    def answers(self) -> bool:
        """Return True when the kafkaguard account can log in over TCP and run a query."""
        return self._query_ok(self.connect_kwargs(database=None))

    def _root_over_socket(self) -> dict[str, Any]:
        return {"unix_socket": str(self.socket), "user": "root", "password": "", "connect_timeout": 2}

    @staticmethod
    def _query_ok(kwargs: dict[str, Any]) -> bool:
        import pymysql

        try:
            conn = pymysql.connect(**kwargs)
        except pymysql.Error:
            return False
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        except pymysql.Error:
            return False
        finally:
            conn.close()
        return True

    def start(self, *, timeout: float = 60.0) -> None:
        """Initialise on first use, start the server and wait until it answers; idempotent."""
        if self.is_running():
            return
        ensure_mariadb_installed()
        account = _service_account(SERVICE_USER)
        fresh = not self._accounts_marker.exists()
        self._init(account)
        process.require_free_port(self.port, "MariaDB")
        if self.log_file.exists():
            _chown_tree(self.log_file, account)
        self.pid = process.spawn(
            [str(MARIADBD), self._marker()],
            log=self.home / "mariadbd.out",
            user=account[0] if account else None,
            group=account[1] if account else None,
        )
        ready = (lambda: self._query_ok(self._root_over_socket())) if fresh else self.answers
        process.wait_until(
            ready,
            timeout=timeout,
            what=f"MariaDB on 127.0.0.1:{self.port}",
            log=self.log_file,
            interval=0.1,
            alive=lambda: self.pid is not None and process.is_alive(self.pid),
        )
        if fresh:
            self._secure()
            self._accounts_marker.touch()

    def _secure(self) -> None:
        """Create the database and the kafkaguard account; give root the password, drop root's other hosts."""
        import pymysql

        password = self.password()
        conn = pymysql.connect(**self._root_over_socket(), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                for host in ("127.0.0.1", "localhost"):
                    cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (USER, host, password))
                    cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (USER, host))
                cur.execute("SELECT host FROM mysql.user WHERE user = 'root' AND host <> 'localhost'")
                for (host,) in cur.fetchall():
                    cur.execute("DROP USER %s@%s", ("root", host))
                cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (password,))
                cur.execute("FLUSH PRIVILEGES")
        finally:
            conn.close()

    def stop(self) -> None:
        """Clean shutdown (SIGTERM): open transactions roll back, committed data is kept."""
        if self.pid is not None:
            process.terminate(self.pid, self._marker(), timeout=60, sig=signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, as a machine crash would (InnoDB recovers at the next start)."""
        if self.pid is not None:
            process.kill_hard(self.pid, self._marker())
            process.reap(self.pid)

    def restart(self, *, timeout: float = 60.0) -> None:
        """Stop (if running) and start again with the data kept."""
        self.stop()
        self.start(timeout=timeout)
