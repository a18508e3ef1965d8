"""OpenTelemetry setup (traces and metrics) and context propagation through event headers.

One trace spans gateway -> Kafka -> each stage -> PostgreSQL: gRPC and asyncpg are instrumented, and the
bus injects/extracts W3C trace context into the headers of every event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from parley.core.settings import TelemetrySettings

_instrumented = False


def setup_tracing(
    service: str,
    settings: TelemetrySettings | None = None,
    extra_processors: Iterable[SpanProcessor] = (),
) -> TracerProvider:
    """Install a tracer provider for ``service`` once per process and instrument asyncpg.

    A second call returns the provider already installed (adding ``extra_processors`` to it), so the
    embedded mode, which runs every service in one process, shares one provider.
    """
    global _instrumented  # noqa: PLW0603 - process-wide instrumentation is a process-wide fact
    settings = settings or TelemetrySettings()
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        if settings.exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        elif settings.exporter == "console":
            provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(provider)
    for processor in extra_processors:
        provider.add_span_processor(processor)
    if not _instrumented:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor  # noqa: PLC0415

        AsyncPGInstrumentor().instrument()
        _instrumented = True
    return provider


def setup_metrics(service: str, settings: TelemetrySettings | None = None) -> None:
    """Install a meter provider for ``service`` once per process: metrics go where the traces go (OTLP to
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, or the console); with ``none`` instruments cost nothing."""
    from opentelemetry import metrics  # noqa: PLC0415
    from opentelemetry.sdk.metrics import MeterProvider  # noqa: PLC0415
    from opentelemetry.sdk.metrics.export import (  # noqa: PLC0415
        ConsoleMetricExporter,
        MetricReader,
        PeriodicExportingMetricReader,
    )

    settings = settings or TelemetrySettings()
    if isinstance(metrics.get_meter_provider(), MeterProvider) or settings.exporter == "none":
        return
    readers: list[MetricReader] = []
    if settings.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter  # noqa: PLC0415

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
    else:
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter()))
    resource = Resource.create({SERVICE_NAME: service})
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))


def inject_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka-style headers."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(k, v.encode()) for k, v in carrier.items()]


def extract_context(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes]) -> otel_context.Context:
    """The trace context carried by event headers (an empty context when there is none)."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    carrier = {k: v.decode(errors="replace") for k, v in items}
    return propagate.extract(carrier)


def grpc_server_interceptors() -> list[object]:
    """OTel interceptors for a grpc.aio server."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor  # noqa: PLC0415

    return [aio_server_interceptor()]


def grpc_client_interceptors() -> list[object]:
    """OTel interceptors for a grpc.aio channel."""
    from opentelemetry.instrumentation.grpc import aio_client_interceptors  # noqa: PLC0415

    return list(aio_client_interceptors())
