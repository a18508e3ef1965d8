"""Composition root of the gateway: the only place its objects are built and wired.

``build_gateway`` wires the domain to whatever bus and conversations store it is given (the embedded mode
hands in an in-process bus and the context servicer; the distributed mode Kafka and a gRPC client).
``serve`` runs the gateway as its own process: HTTP (uvicorn) and gRPC in one event loop, replies from
Kafka, and an orderly stop on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from parley.core.bus import EventBus, Subscription
from parley.core.bus.kafka import KafkaBus
from parley.core.context_client import ContextClient
from parley.core.errors import ConfigurationError, UnavailableError
from parley.core.grpc import GrpcServer, ServiceRegistration
from parley.core.lifecycle import run_until_signal
from parley.core.logging import configure_logging, get_logger
from parley.core.telemetry import setup_tracing
from parley.gateway.adapters.grpc import GatewayServicer
from parley.gateway.adapters.http import ReadinessCheck, context_check, create_http_app
from parley.gateway.adapters.keys import PostgresKeyStore
from parley.gateway.adapters.stage import reply_subscription
from parley.gateway.domain import ChatService, ReplyRouter
from parley.gateway.domain.auth import Authenticator
from parley.gateway.domain.keys import KeyVerifier
from parley.gateway.domain.ratelimit import RateLimiter
from parley.gateway.domain.tokens import UserTokenVerifier
from parley.gateway.ports import Conversations, KeyStore
from parley.gateway.settings import GatewaySettings
from parley.gateway.v1 import gateway_pb2_grpc

log = get_logger(__name__)

SERVICE_NAME = "parley.gateway.v1.GatewayService"


@dataclass
class GatewayService:
    """Everything the gateway consists of, ready to be served (or called in-process)."""

    http_app: FastAPI
    servicer: GatewayServicer
    registration: ServiceRegistration
    subscriptions: list[Subscription]
    router: ReplyRouter
    chat: ChatService
    auth: Authenticator


_MIN_HS256_SECRET_BYTES = 32


def _user_token_verifier(settings: GatewaySettings) -> UserTokenVerifier | None:
    """The JWT verifier the settings describe, or ``None`` when no key is configured."""
    if settings.jwt_algorithm == "HS256":
        if settings.jwt_public_key or settings.jwt_public_key_file:
            raise ConfigurationError(
                "PARLEY_GATEWAY_JWT_PUBLIC_KEY(_FILE) is for RS256; set PARLEY_GATEWAY_JWT_ALGORITHM=RS256"
            )
        if settings.jwt_secret is None:
            return None
        key = settings.jwt_secret.get_secret_value()
        if len(key.encode()) < _MIN_HS256_SECRET_BYTES:
            raise ConfigurationError(
                f"PARLEY_GATEWAY_JWT_SECRET must be at least {_MIN_HS256_SECRET_BYTES} bytes for HS256"
            )
    else:
        if settings.jwt_secret is not None:
            raise ConfigurationError("PARLEY_GATEWAY_JWT_SECRET is for HS256; RS256 takes a public key")
        key = settings.jwt_public_key or _read_key_file(settings.jwt_public_key_file)
        if not key:
            return None
    return UserTokenVerifier(
        settings.jwt_algorithm,
        key,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway_s=settings.jwt_leeway_s,
        tenant_claim=settings.jwt_tenant_claim,
    )


def _read_key_file(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read PARLEY_GATEWAY_JWT_PUBLIC_KEY_FILE {path}: {exc}") from exc


def build_authenticator(settings: GatewaySettings, keys: KeyStore | None) -> Authenticator:
    """The authenticator the settings ask for; ``keys`` is required with ``auth=api_key``."""
    if settings.auth == "none":
        return Authenticator("none")
    if keys is None:
        raise ConfigurationError(
            "PARLEY_GATEWAY_AUTH=api_key needs the API key store (PostgreSQL): set PARLEY_DATABASE_URL"
        )
    user_tokens = _user_token_verifier(settings)
    if (settings.jwt_required or settings.jwt_required_tenants) and user_tokens is None:
        raise ConfigurationError(
            "PARLEY_GATEWAY_JWT_REQUIRED(_TENANTS) needs a user token key: set PARLEY_GATEWAY_JWT_SECRET "
            "(HS256) or PARLEY_GATEWAY_JWT_PUBLIC_KEY(_FILE) with PARLEY_GATEWAY_JWT_ALGORITHM=RS256"
        )
    limiter = (
        RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        if settings.rate_limit_per_s > 0
        else None
    )
    return Authenticator(
        "api_key",
        keys=KeyVerifier(keys, ttl_s=settings.api_key_cache_ttl_s),
        user_tokens=user_tokens,
        limiter=limiter,
        require_user_token=settings.jwt_required,
        user_token_tenants=settings.jwt_required_tenants,
    )


def bus_check(bus: EventBus) -> ReadinessCheck:
    """Ready when the bus answers its ``ping()``; a bus without one (in-process) is always reachable."""

    async def check() -> None:
        ping = getattr(bus, "ping", None)
        if ping is not None:
            await ping()

    return check


def keys_check(keys: KeyStore) -> ReadinessCheck:
    """Ready when the key store answers a lookup (of a key id no key has)."""

    async def check() -> None:
        await keys.find_key("0000000000000000")

    return check


def build_gateway(
    settings: GatewaySettings, bus: EventBus, conversations: Conversations, keys: KeyStore | None = None
) -> GatewayService:
    """Wire the gateway. The caller registers ``subscriptions`` on ``bus`` and starts it.

    ``keys`` is the API key store, required when ``settings.auth`` is ``api_key``.
    """
    auth = build_authenticator(settings, keys)
    router = ReplyRouter(max_pending=settings.max_pending_turns)
    chat = ChatService(
        conversations,
        bus,
        router,
        instance_id=settings.instance_id,
        max_text_chars=settings.max_text_chars,
        reply_timeout_s=settings.reply_timeout_s,
    )
    servicer = GatewayServicer(chat, auth)
    readiness = {"bus": bus_check(bus), "context": context_check(conversations)}
    if keys is not None and settings.auth == "api_key":
        readiness["keys"] = keys_check(keys)
    http_app = create_http_app(chat, conversations, settings, readiness=readiness, authenticator=auth)
    return GatewayService(
        http_app=http_app,
        servicer=servicer,
        registration=ServiceRegistration(
            gateway_pb2_grpc.add_GatewayServiceServicer_to_server, servicer, SERVICE_NAME
        ),
        subscriptions=[reply_subscription(router)],
        router=router,
        chat=chat,
        auth=auth,
    )


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: ``run_until_signal`` stops every part, in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _listen(host: str, port: int) -> socket.socket:
    """A bound listening socket, so a taken port is a clear error here rather than an exit in uvicorn."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        return socket.create_server((host, port), family=infos[0][0], backlog=2048)
    except OSError as exc:
        raise UnavailableError(
            f"cannot listen for HTTP on {host}:{port} ({exc}); "
            "set PARLEY_GATEWAY_HTTP_HOST / PARLEY_GATEWAY_HTTP_PORT"
        ) from exc


def _is_loopback(host: str) -> bool:
    return host in {"127.0.0.1", "::1", "localhost"} or host.startswith("127.")


class GatewayServer:
    """The gateway as a process: the bus, the gRPC server and the HTTP server, started and stopped in order.

    Stopping closes the HTTP and gRPC servers first and lets their in-flight requests finish (they may be
    waiting for replies, which still arrive), and stops the bus last.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        bus: EventBus,
        conversations: Conversations,
        keys: KeyStore | None = None,
    ) -> None:
        self.settings = settings
        self._own_keys: PostgresKeyStore | None = None
        if settings.auth == "api_key" and keys is None:
            if settings.database.url is None:
                raise ConfigurationError(
                    "PARLEY_GATEWAY_AUTH=api_key keeps API keys in PostgreSQL: set PARLEY_DATABASE_URL"
                )
            keys = self._own_keys = PostgresKeyStore.for_url(settings.database.url, settings.database)
        self.service = build_gateway(settings, bus, conversations, keys)
        self._bus = bus
        for subscription in self.service.subscriptions:
            bus.subscribe(subscription)
        self._grpc = GrpcServer([self.service.registration], settings.grpc_host, settings.grpc_port)
        self._http: _Uvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._bus_started = False
        self._grpc_started = False
        self.grpc_port = 0
        self.http_port = 0

    async def start(self) -> None:
        """Start consuming replies, then serve gRPC and HTTP; returns once both listen."""
        settings = self.settings
        if self._own_keys is not None:
            await self._own_keys.open()
        if settings.auth == "none" and not _is_loopback(settings.http_host):
            log.warning(
                "authentication is off (PARLEY_GATEWAY_AUTH=none): anyone who reaches this gateway can act "
                "as any tenant and user; set PARLEY_GATEWAY_AUTH=api_key outside local runs",
                http_host=settings.http_host,
            )
        await self._bus.start()
        self._bus_started = True
        self.grpc_port = await self._grpc.start()
        self._grpc_started = True
        sock = await _listen(settings.http_host, settings.http_port)
        self.http_port = sock.getsockname()[1]
        self._http = _Uvicorn(
            uvicorn.Config(
                self.service.http_app,
                host=settings.http_host,
                port=self.http_port,
                log_config=None,
                timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
            )
        )
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]), name="gateway-http")
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise UnavailableError("the HTTP server stopped while starting; see the log")
            await asyncio.sleep(0.01)
        log.info("HTTP server listening", host=settings.http_host, port=self.http_port)

    async def stop(self) -> None:
        """Stop taking requests, let in-flight ones finish, then stop the bus (safe after a failed start)."""
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            if not self._http_task.done():  # a task that failed to start has already raised in start()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._http_task
            self._http = None
            self._http_task = None
        if self._grpc_started:
            await self._grpc.stop(self.settings.shutdown_grace_s)
            self._grpc_started = False
        if self._bus_started:
            await self._bus.stop()
            self._bus_started = False
        if self._own_keys is not None:
            await self._own_keys.close()


async def serve(settings: GatewaySettings | None = None) -> None:
    """Run the gateway as its own process until SIGTERM or SIGINT."""
    settings = settings or GatewaySettings()
    configure_logging(settings.log, service="gateway")
    setup_tracing("gateway", settings.telemetry)
    bus = KafkaBus(settings.kafka, instance_id=settings.instance_id)
    conversations = ContextClient.connect(settings.context_address)
    server = GatewayServer(settings, bus, conversations)
    await run_until_signal(server.start, server.stop)
