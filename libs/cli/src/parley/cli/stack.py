"""Every service as its own process on this machine (distributed mode without Kubernetes).

Used by ``parley stack up|down`` and by the end-to-end tests, which also kill and restart single services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from parley.core.infra import free_port, pid_alive

#: Start order: context first (others call it), gateway last (it takes traffic).
SERVICES: tuple[str, ...] = ("context", "nlu", "dialog", "generator", "gateway")
DEFAULT_GRPC_PORTS: dict[str, int] = {
    "nlu": 50051,
    "dialog": 50052,
    "generator": 50053,
    "context": 50054,
    "gateway": 50055,
}
DEFAULT_HTTP_PORT = 8080


class StackError(RuntimeError):
    """A service did not come up; the message names it and its log file."""


@dataclass
class StackConfig:
    """Where the infrastructure is and which ports the services take."""

    kafka_bootstrap: str
    database_url: str
    project_dir: Path
    run_dir: Path
    topic_prefix: str = "parley."
    model_dir: Path | None = None
    grpc_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_GRPC_PORTS))
    http_port: int = DEFAULT_HTTP_PORT
    extra_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def with_free_ports(cls, **kwargs: object) -> StackConfig:
        """A config whose ports are all free now (tests run beside other stacks)."""
        config = cls(**kwargs)  # type: ignore[arg-type]
        config.grpc_ports = {name: free_port() for name in SERVICES}
        config.http_port = free_port()
        return config

    def env(self, name: str) -> dict[str, str]:
        """The environment of service ``name``."""
        env = {
            **os.environ,
            "PARLEY_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "PARLEY_KAFKA_TOPIC_PREFIX": self.topic_prefix,
            "PARLEY_DATABASE_URL": self.database_url,
            "PARLEY_PROJECT_DIR": str(self.project_dir),
            "PARLEY_CONTEXT_ADDRESS": f"127.0.0.1:{self.grpc_ports['context']}",
            f"PARLEY_{name.upper()}_GRPC_PORT": str(self.grpc_ports[name]),
            "PARLEY_GATEWAY_HTTP_PORT": str(self.http_port),
            "PARLEY_LOG_FORMAT": "json",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        if self.model_dir is not None:
            env["PARLEY_NLU_MODEL_DIR"] = str(self.model_dir)
        return env

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class Stack:
    """Starts, watches, kills and stops the service processes of one :class:`StackConfig`."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.config.run_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def log_path(self, name: str) -> Path:
        return self.config.run_dir / f"{name}.log"

    def pid_path(self, name: str) -> Path:
        return self.config.run_dir / f"{name}.pid"

    def start(self, names: Iterable[str] = SERVICES, timeout: float = 180.0) -> None:
        """Start ``names`` in order, each waiting for the previous to report healthy."""
        for name in names:
            self.start_service(name, timeout=timeout)

    def start_service(self, name: str, timeout: float = 180.0, detach: bool = False) -> None:
        """Start one service and wait until its gRPC health says SERVING."""
        log = self.log_path(name).open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", f"parley.{name}"],
            env=self.config.env(name),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
        )
        log.close()
        self.processes[name] = proc
        self.pid_path(name).write_text(str(proc.pid))
        self.wait_healthy(name, timeout)

    def wait_healthy(self, name: str, timeout: float = 180.0) -> None:
        """Poll the service's health (gRPC; the gateway's HTTP readiness too) until it answers."""
        deadline = time.monotonic() + timeout
        port = self.config.grpc_ports[name]
        while time.monotonic() < deadline:
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is not None:
                raise StackError(
                    f"{name} exited with {proc.returncode}; see {self.log_path(name)}\n{self.tail(name)}"
                )
            if _grpc_serving(port) and (name != "gateway" or _http_ready(self.config.gateway_url)):
                return
            time.sleep(0.25)
        raise StackError(
            f"{name} not healthy after {timeout:.0f} s; see {self.log_path(name)}\n{self.tail(name)}"
        )

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to a service and wait for it to be gone."""
        proc = self.processes.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM every service (gateway first), then SIGKILL what is left after ``grace``."""
        for name in reversed(SERVICES):
            proc = self.processes.get(name)
            if proc is not None and proc.poll() is None:
                proc.terminate()
        for name in reversed(SERVICES):
            proc = self.processes.pop(name, None)
            if proc is None:
                continue
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
            self.pid_path(name).unlink(missing_ok=True)

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_detached(run_dir: Path, grace: float = 15.0) -> list[str]:
    """Stop services started by ``parley stack up`` (found by their pid files); returns their names."""
    stopped: list[str] = []
    for name in reversed(SERVICES):
        pid_file = run_dir / f"{name}.pid"
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text().strip() or 0)
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    return stopped


def read_env_file(path: Path) -> Mapping[str, str]:
    """``KEY=value`` lines (as written by ``make infra-up``)."""
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def _grpc_serving(port: int) -> bool:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def _http_ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False
