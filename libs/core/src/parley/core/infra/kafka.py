"""A real single-node Kafka broker (KRaft, broker+controller in one JVM) started from Maven Central's jars.

Why not a container: the development machines and CI runners of this project may have no Docker engine,
but they have a JDK and Maven. The broker is the same ``kafka.Kafka`` that the official images run.

Layout of ``<data dir>/kafka``: ``server.properties`` (rewritten on every start), ``data/`` (the log dirs,
formatted once), ``logs/server.log`` (log4j), ``kafka.out`` (the JVM's stdout/stderr), ``kafka.pid`` and
``state.json`` (ports and cluster id, so a restart keeps its address when the ports are still free).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from parley.core.infra import (
    LOCALHOST,
    Deadline,
    InfraError,
    default_data_dir,
    file_lock,
    find_repo_root,
    free_port,
    pid_alive,
    port_free,
    port_open,
    process_cmdline,
    read_pid,
    run_sync,
    say,
    tail,
)

__all__ = ["LocalKafka", "resolve_kafka_jars"]

MIN_JAVA = 17  # Kafka 4.x brokers need Java 17
_MAIN_CLASS = "kafka.Kafka"


def _project_dir() -> Path:
    """``infra/local/kafka`` of the checkout: the pom.xml naming the broker's jars and the log4j2 config."""
    root = find_repo_root()
    if root is None:
        raise InfraError(
            "cannot find the Parley repository (Makefile + proto/) to read infra/local/kafka/pom.xml; "
            "run from inside the checkout or pass project_dir="
        )
    return root / "infra" / "local" / "kafka"


def _default_cache_dir() -> Path:
    """Jars are shared by every data dir (and test session): ``<repo>/.local/kafka``."""
    root = find_repo_root()
    if root is not None:
        return root / ".local" / "kafka"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "parley" / "kafka"


def _require_executable(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise InfraError(f"`{name}` is not on PATH; it is needed {why}")
    return path


def _java() -> str:
    """The java binary ($JAVA_HOME first), checked to be new enough for a Kafka 4 broker."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate is not None and candidate.is_file():
        java = str(candidate)
    else:
        java = _require_executable(
            "java",
            f"to run the Kafka broker (Java {MIN_JAVA}+; Debian: apt-get install openjdk-17-jre-headless)",
        )
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InfraError(f"`{java} -version` failed: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match:
        major = int(match.group(1))
        if major == 1 and match.group(2):  # "1.8.0" style
            major = int(match.group(2))
        if major < MIN_JAVA:
            raise InfraError(f"{java} is Java {major}; the Kafka 4 broker needs Java {MIN_JAVA} or newer")
    return java


def resolve_kafka_jars(project_dir: Path | None = None, cache_dir: Path | None = None) -> Path:
    """The folder holding the broker's runtime jars, downloaded with Maven on first use.

    The folder is reused while its stamp matches the pom.xml, so bumping the Kafka version re-resolves.
    Maven writes into a temporary folder that is renamed at the end: an interrupted download never leaves
    a half-filled cache behind.
    """
    project_dir = project_dir or _project_dir()
    cache_dir = cache_dir or _default_cache_dir()
    pom = project_dir / "pom.xml"
    if not pom.is_file():
        raise InfraError(f"{pom} is missing: it names the Kafka jars to download")
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()
    libs = cache_dir / "libs"
    stamp = libs / ".pom.sha256"

    def fresh() -> bool:
        return stamp.is_file() and stamp.read_text().strip() == digest and any(libs.glob("kafka_2.13-*.jar"))

    if fresh():
        return libs
    with file_lock(cache_dir / ".lock"):
        if fresh():  # another process resolved them while we waited
            return libs
        mvn = _require_executable(
            "mvn", f"once to download Kafka's jars into {libs} (Debian: apt-get install maven)"
        )
        staging = cache_dir / f"libs.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        say(f"downloading the Kafka broker's jars from Maven Central into {libs} (once) ...")
        command = [
            mvn,
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        # Maven's own lines ("Downloading from central: ...") are the progress; stderr keeps stdout clean.
        result = subprocess.run(command, stdout=2, stderr=2, stdin=subprocess.DEVNULL, check=False)
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            shutil.rmtree(staging, ignore_errors=True)
            raise InfraError(
                f"Maven could not resolve the Kafka jars (exit {result.returncode}; its output is above). "
                f"Maven Central (or a mirror in ~/.m2/settings.xml) must be reachable once. "
                f"Command: {' '.join(command)}"
            )
        (staging / ".pom.sha256").write_text(digest + "\n")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        say(f"Kafka jars ready: {sum(1 for _ in libs.glob('*.jar'))} jars in {libs}")
    return libs


def _new_cluster_id() -> str:
    """Kafka's Uuid text form (22 chars of url-safe base64), made here to save a JVM start."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class LocalKafka:
    """One KRaft broker+controller JVM for a data dir; ``start()`` twice gives the same broker.

    The JVM runs detached (own session, output to ``kafka.out``, pid in ``kafka.pid``), so the broker of
    ``make infra-up`` outlives the command; ``stop()`` (``make infra-down``) ends it.
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        project_dir: Path | None = None,
        cache_dir: Path | None = None,
        startup_timeout: float = 90.0,
        heap: str = "512m",  # -Xmx; -Xms is 256m, so at least that
        stop_at_exit: bool = False,
    ) -> None:
        base = Path(data_dir).expanduser().resolve() if data_dir is not None else default_data_dir()
        self.home = base / "kafka"
        self._port = port
        self._controller_port = controller_port
        self._project_dir = project_dir
        self._cache_dir = cache_dir
        self.startup_timeout = startup_timeout
        self.heap = heap
        self._process: subprocess.Popen[bytes] | None = None
        if stop_at_exit:
            atexit.register(self.stop)

    # -- where things are -------------------------------------------------------------------------------
    @property
    def properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.home / "data"

    @property
    def output_file(self) -> Path:
        """The JVM's stdout/stderr: the first place to look when the broker does not come up."""
        return self.home / "kafka.out"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def _state_file(self) -> Path:
        return self.home / "state.json"

    def _state(self) -> dict[str, Any]:
        try:
            return dict(json.loads(self._state_file.read_text()))
        except (OSError, ValueError):
            return {}

    @property
    def port(self) -> int | None:
        """The client (PLAINTEXT) port of the current or last broker of this data dir."""
        port = self._state().get("port")
        return int(port) if port is not None else self._port

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>`` for ``bootstrap_servers``; known once the broker was started."""
        port = self.port
        if port is None:
            raise InfraError(f"no Kafka broker was started in {self.home}; call start() first")
        return f"{LOCALHOST}:{port}"

    @property
    def pid(self) -> int | None:
        """The broker JVM's pid when it is alive."""
        pid = read_pid(self.pid_file)
        if self._process is not None and self._process.pid == pid:
            # our own child: poll() also reaps it, and its cmdline may still be Python's before exec
            return pid if self._process.poll() is None else None
        if not pid_alive(pid):
            return None
        assert pid is not None
        cmdline = process_cmdline(pid)
        if cmdline is not None and _MAIN_CLASS not in cmdline:
            return None  # the pid was recycled by an unrelated process
        return pid

    def is_running(self) -> bool:
        """Pidfile names a live broker JVM and its port accepts connections."""
        port = self.port
        return self.pid is not None and port is not None and port_open(port)

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> str:
        """Start the broker (or find the running one) and return its bootstrap address once it serves."""
        with file_lock(self.home / ".lock"):
            if self.pid is not None and self.port is not None:
                say(f"Kafka already running (pid {self.pid}) on {self.bootstrap}")
                self._wait_ready(self.port)  # a concurrent `up` may still be starting it
                return self.bootstrap
            self.pid_file.unlink(missing_ok=True)
            java = _java()
            libs = resolve_kafka_jars(self._project_dir, self._cache_dir)
            port, controller_port, cluster_id = self._choose_ports()
            self.home.mkdir(parents=True, exist_ok=True)
            (self.home / "logs").mkdir(exist_ok=True)
            self.properties_file.write_text(self.render_properties(port, controller_port))
            self._state_file.write_text(
                json.dumps({"port": port, "controller_port": controller_port, "cluster_id": cluster_id})
            )
            self._format(java, libs, cluster_id)
            started = time.monotonic()
            self._launch(java, libs)
            self._wait_ready(port)
            say(f"Kafka ready on {self.bootstrap} after {time.monotonic() - started:.1f} s (pid {self.pid})")
            return self.bootstrap

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM: a controlled shutdown, SIGKILL after ``timeout``); True if one ran."""
        if not self.home.is_dir():
            return False
        with file_lock(self.home / ".lock"):
            pid = self.pid
            if pid is None:
                self.pid_file.unlink(missing_ok=True)
                self._reap()
                return False
            say(f"stopping Kafka (pid {pid}) ...")
            self._signal(pid, signal.SIGTERM)
            deadline = Deadline(timeout)
            while pid_alive(pid) and not deadline.expired:
                self._reap()
                time.sleep(0.2)
            if pid_alive(pid):
                say(f"Kafka did not stop within {timeout:.0f} s; killing it")
                self._signal(pid, signal.SIGKILL)
                while pid_alive(pid):
                    self._reap()
                    time.sleep(0.1)
            self._reap()
            self.pid_file.unlink(missing_ok=True)
            return True

    # -- internals --------------------------------------------------------------------------------------
    def _choose_ports(self) -> tuple[int, int, str]:
        """Explicit ports win; else the previous ones while free (a stable address); else fresh ones."""
        state = self._state()

        def pick(explicit: int | None, previous: int | None, avoid: int | None = None) -> int:
            if explicit is not None:
                if not port_free(explicit):
                    raise InfraError(f"port {explicit} on {LOCALHOST} is taken; pick another or leave it out")
                return explicit
            if previous is not None and previous != avoid and port_free(previous):
                return int(previous)
            port = free_port()
            while port == avoid:
                port = free_port()
            return port

        port = pick(self._port, state.get("port"))
        controller_port = pick(self._controller_port, state.get("controller_port"), avoid=port)
        cluster_id = str(state.get("cluster_id") or _new_cluster_id())
        return port, controller_port, cluster_id

    def render_properties(self, port: int, controller_port: int) -> str:
        """server.properties for a single node that is its own controller (KRaft combined mode).

        The quorum is static (``controller.quorum.voters``), so a restart on other ports keeps working.
        Replication factors are 1 (one broker); the small cleaner buffer lets a 512 MB heap suffice.
        """
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{LOCALHOST}:{controller_port}",
            "listeners": f"PLAINTEXT://{LOCALHOST}:{port},CONTROLLER://{LOCALHOST}:{controller_port}",
            "advertised.listeners": f"PLAINTEXT://{LOCALHOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.log_dir),
            "num.partitions": "3",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "16777216",
        }
        lines = ["# written by parley.core.infra.kafka on every start; edits are overwritten"]
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def _jvm(self, java: str, libs: Path, *, broker: bool) -> list[str]:
        project_dir = self._project_dir or _project_dir()
        heap = ["-Xms256m", f"-Xmx{self.heap}"] if broker else []  # the format tool needs little
        return [
            java,
            *heap,
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            f"-Dlog4j2.configurationFile={project_dir / 'log4j2.xml'}",
            "-cp",
            f"{libs}{os.sep}*",
        ]

    def _format(self, java: str, libs: Path, cluster_id: str) -> None:
        """Format the log dir once (KRaft needs meta.properties before the first start)."""
        if (self.log_dir / "meta.properties").is_file():
            return
        say(f"formatting Kafka storage in {self.log_dir}")
        command = [
            *self._jvm(java, libs, broker=False),
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            cluster_id,
            "-c",
            str(self.properties_file),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise InfraError(
                f"formatting Kafka storage failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _launch(self, java: str, libs: Path) -> None:
        say(f"starting Kafka (log: {self.output_file})")
        with self.output_file.open("ab") as out:
            self._process = subprocess.Popen(
                [*self._jvm(java, libs, broker=True), _MAIN_CLASS, str(self.properties_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,  # outlives `up`, and a Ctrl-C in the shell does not reach it
            )
        self.pid_file.write_text(f"{self._process.pid}\n")

    def _wait_ready(self, port: int) -> None:
        """Wait until a metadata request answers with this broker (not just an open socket)."""
        deadline = Deadline(self.startup_timeout)
        last_report = 0.0
        while True:
            pid = self.pid
            if pid is None:
                self._reap()
                raise InfraError(
                    f"the Kafka broker exited while starting; see {self.output_file} and "
                    f"{self.home / 'logs' / 'server.log'}. Last lines:\n{tail(self.output_file)}"
                )
            if port_open(port) and _broker_answers(f"{LOCALHOST}:{port}"):
                return
            if deadline.expired:
                raise InfraError(
                    f"the Kafka broker (pid {pid}) did not answer on {LOCALHOST}:{port} within "
                    f"{self.startup_timeout:.0f} s (`python -m parley.core.infra down` stops it). "
                    f"See {self.output_file}. Last lines:\n"
                    f"{tail(self.output_file)}"
                )
            if deadline.elapsed - last_report >= 5:
                last_report = deadline.elapsed
                say(f"waiting for Kafka on {LOCALHOST}:{port} ... {deadline.elapsed:.0f} s")
            time.sleep(0.5)

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:  # started in its own session: take along anything it spawned
                os.killpg(pid, sig)
                return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _reap(self) -> None:
        """Collect our own child's exit status, so it does not linger as a zombie."""
        if self._process is not None and self._process.poll() is not None:
            self._process = None


def _broker_answers(bootstrap: str) -> bool:
    """A metadata request through aiokafka (as the services connect) lists at least one broker."""

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    # aiokafka logs every refused connection at ERROR; while waiting for a start those are expected.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        return run_sync(probe)
    finally:
        quiet.setLevel(level)
