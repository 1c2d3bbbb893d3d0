"""OpenTelemetry spans per stage, built from the pipeline's stamps; off without an exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from router.errors import UpstreamTimeout
from router.observability.tracing import Tracing
from tests.unit.core.policy_text import write_policy
from tests.unit.observability.harness import Harness, harness


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[Harness, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async for h in harness(write_policy(tmp_path)):
        h.services.observability.tracing = Tracing(provider)
        yield h, exporter


def test_no_exporter_means_no_tracing() -> None:
    assert Tracing.from_env({}) is None


def test_console_and_otlp_exporters_are_configured_from_env() -> None:
    console = Tracing.from_env({"ROUTER_OTEL": "console"})
    assert console is not None
    console.shutdown()
    otlp = Tracing.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert otlp is not None
    otlp.shutdown()


async def test_request_span_with_stage_children(
    traced: tuple[Harness, InMemorySpanExporter],
) -> None:
    h, exporter = traced
    r = await h.chat()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        "router.request", "router.plan", "router.classify", "router.admit", "router.upstream"
    }  # fmt: skip
    root = spans["router.request"]
    assert root.attributes is not None
    assert root.attributes["router.request_id"] == r.headers["x-request-id"]
    assert root.attributes["router.policy_hash"] == r.headers["x-router-policy"]
    assert root.attributes["router.model"] == "small"
    assert root.attributes["http.response.status_code"] == 200
    for name in ("router.plan", "router.classify", "router.admit", "router.upstream"):
        child = spans[name]
        assert child.parent is not None and child.parent.span_id == root.context.span_id
        assert child.start_time is not None and root.start_time is not None
        assert child.end_time is not None and root.end_time is not None
        assert root.start_time <= child.start_time <= child.end_time <= root.end_time


async def test_failed_attempts_are_span_events_and_errors_set_status(
    traced: tuple[Harness, InMemorySpanExporter],
) -> None:
    h, exporter = traced
    h.backend.errors = {m: [UpstreamTimeout("t", model=m)] * 2 for m in ("small", "big", "backup")}
    assert (await h.chat()).status_code == 504
    spans = {s.name: s for s in exporter.get_finished_spans()}
    events = spans["router.upstream"].events
    assert len(events) == 4 and {e.name for e in events} == {"attempt_failed"}
    assert events[0].attributes == {"model": "small", "code": "upstream_timeout"}
    assert not spans["router.request"].status.is_ok
