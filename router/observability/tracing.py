"""OpenTelemetry traces: one span per request with a child span per stage.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is
set — spans go to that OTLP/HTTP collector, configured by the standard ``OTEL_*`` variables — or
when ``ROUTER_OTEL=console`` (spans printed to stdout, for debugging). Otherwise
:meth:`Tracing.from_env` returns None, nothing of OpenTelemetry is imported, and the request
path pays nothing.

Spans are built when the request is recorded, from the :class:`~router.stage_times.
StageTimes` stamps the pipeline takes anyway, with explicit start and end times: the request
path never enters or leaves a span. The provider is this object's own (the global OpenTelemetry
provider is left alone).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from router.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class TraceFacts:
    """What one request's spans are made of (``perf_counter`` stamps, 0.0 when absent)."""

    started: float
    planned: float
    routed: float
    admitted: float
    upstream_s: float
    ended: float
    attributes: dict[str, str | int | float | bool]
    failures: tuple[tuple[str, str], ...] = ()
    error: str | None = None


class Tracing:
    """A tracer over its own ``TracerProvider``."""

    def __init__(self, provider: Any) -> None:
        """Trace through ``provider`` (an ``opentelemetry.sdk.trace.TracerProvider``)."""
        self.provider = provider
        self.tracer = provider.get_tracer("hybrid-router")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Tracing | None:
        """A tracer when ``env`` (default: the process environment) configures an exporter."""
        return cls.from_settings(Settings.from_env(env))

    @classmethod
    def from_settings(cls, settings: Settings) -> Tracing | None:
        """A tracer when ``settings`` configure an exporter, else None."""
        endpoint = settings.otel_traces_endpoint or settings.otel_endpoint
        console = settings.otel_console
        if not endpoint and not console:
            return None
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                BatchSpanProcessor,
                ConsoleSpanExporter,
                SimpleSpanProcessor,
            )
        except ImportError as exc:
            log.warning("tracing_unavailable", error=repr(exc))
            return None
        resource = Resource.create({"service.name": settings.otel_service_name})
        provider = TracerProvider(resource=resource)
        if console:
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        if endpoint:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError as exc:
                log.warning("otlp_exporter_unavailable", error=repr(exc))
            else:
                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        log.info("tracing_enabled", endpoint=endpoint, console=console)
        return cls(provider)

    def record(self, facts: TraceFacts) -> None:
        """Emit the request span and its stage spans, timed from ``facts``."""
        offset_ns = time.time_ns() - int(time.perf_counter() * 1e9)

        def ns(t: float) -> int:
            return offset_ns + int(t * 1e9)

        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        root = self.tracer.start_span(
            "router.request", start_time=ns(facts.started), attributes=facts.attributes
        )
        ctx = trace.set_span_in_context(root)
        stages = (
            ("router.plan", facts.started, facts.planned),
            ("router.classify", facts.planned, facts.routed),
            ("router.admit", facts.routed, facts.admitted),
        )
        for name, t0, t1 in stages:
            if t0 and t1 and t1 >= t0:
                self.tracer.start_span(name, context=ctx, start_time=ns(t0)).end(end_time=ns(t1))
        if facts.admitted:
            up = self.tracer.start_span(
                "router.upstream",
                context=ctx,
                start_time=ns(facts.admitted),
                attributes={"router.upstream_s": facts.upstream_s},
            )
            for model, code in facts.failures:
                up.add_event("attempt_failed", {"model": model, "code": code})
            up.end(end_time=ns(facts.ended))
        if facts.error:
            root.set_status(Status(StatusCode.ERROR, facts.error))
        root.end(end_time=ns(facts.ended))

    def shutdown(self) -> None:
        """Flush and stop the exporters."""
        self.provider.shutdown()
