"""A throwaway PostgreSQL cluster for the fleet tests and benchmarks/bench_fleet.py.

``initdb`` in a temporary directory, ``pg_ctl`` on a free loopback port, trust authentication on
127.0.0.1 only. The server refuses to run as root, so under root the cluster belongs to a system
user (``mpp-pg``, created with ``useradd`` when missing) and every server command runs as that
user. Debian's binaries live in /usr/lib/postgresql/VERSION/bin (scripts/install-postgres.sh);
``$PG_BIN`` names another directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PgCluster", "PgNotFound", "find_pg_bin"]

USER = "mpp-pg"


class PgNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_pg_bin() -> Path:
    """The directory holding initdb, pg_ctl and postgres (newest Debian version first)."""
    candidates = [os.environ["PG_BIN"]] if os.environ.get("PG_BIN") else []
    candidates += sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return Path(candidate)
    raise PgNotFound("PostgreSQL server binaries not found: run scripts/install-postgres.sh")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> tuple[int, int] | None:
    """(uid, gid) to run the server as: ``None`` when not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(USER)
    return entry.pw_uid, entry.pw_gid


class PgCluster:
    """One cluster: ``start()``, ``url(db)``, ``create_database(name)``, ``restart()``,
    ``destroy()``. ``fsync`` off trades crash safety of the throwaway data for speed (a fast
    shutdown still writes everything out)."""

    def __init__(
        self, *, fsync: bool = True, max_connections: int = 200, settings: tuple[str, ...] = ()
    ) -> None:
        self.bin = find_pg_bin()
        self.port = free_port()
        self.owner = _server_user()
        self.base = Path(tempfile.mkdtemp(prefix="mpp-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.fsync = fsync
        self.max_connections = max_connections
        #: More server settings (``name=value``), e.g. for profiling with pg_stat_statements.
        self.settings = settings
        if self.owner is not None:
            os.chown(self.base, *self.owner)
        os.chmod(self.base, 0o700)

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {}
        if self.owner is not None:
            kwargs = {"user": self.owner[0], "group": self.owner[1], "extra_groups": []}
        return subprocess.run(  # type: ignore[call-overload, no-any-return]
            list(argv),
            check=check,
            capture_output=True,
            text=True,
            cwd=self.base,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            **kwargs,
        )

    def initdb(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        if not self.data.exists():
            self.initdb()
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.base}",
                f"-c max_connections={self.max_connections}",
                f"-c fsync={'on' if self.fsync else 'off'}",
                "-c shared_buffers=64MB",
                *(f"-c {setting}" for setting in self.settings),
            ]
        )
        result = self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
            "-o", options, "-w", "-t", "60", "start", check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {result.stderr}\n{self.server_log()}")

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop",
                  check=False)  # fmt: skip

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def server_log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-4000:]
        return ""

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, name: str, database: str = "postgres") -> str:
        """A new empty schema; returns a URL whose ``search_path`` starts with it (much faster
        than a database per test)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url(database)}?options=-csearch_path%3D{name}"

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
