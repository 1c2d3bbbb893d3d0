"""Every metric of /metrics, driven through the in-process app and read back by scraping."""

from __future__ import annotations

import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from router.backends.local import LocalStats
from router.backends.scripted import ScriptedBackend
from router.errors import UpstreamServerError, UpstreamTimeout
from router.observability.drift import DriftMonitor, Reference
from router.protocol.chat_response import Usage
from tests.unit.core.policy_text import POLICY, write_policy
from tests.unit.observability.harness import Harness, harness, value

LOCAL_MODEL = """
  - name: tiny
    backend: local
    tier: local
    local: {source: scripted}
routes:"""


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for x in harness(write_policy(tmp_path)):
        yield x


async def test_requests_by_route_model_status_and_cache(h: Harness) -> None:
    for _ in range(3):
        assert (await h.chat()).status_code == 200
    assert (
        await h.post({"model": "big", "messages": [{"role": "user", "content": "x"}]})
    ).is_success
    s = await h.samples()
    labels = {"route": "auto", "model": "small", "status": "200", "cache": "miss"}
    assert value(s, "router_requests_total", **labels) == 3
    assert (
        value(s, "router_requests_total", route="-", model="big", status="200", cache="miss") == 1
    )


async def test_upstream_errors_count_once_with_their_status(h: Harness) -> None:
    h.backend.errors = {m: [UpstreamTimeout("t", model=m)] * 2 for m in ("small", "big", "backup")}
    assert (await h.chat()).status_code == 504
    s = await h.samples()
    assert value(s, "router_requests_total", route="auto", model="small", status="504",
                 cache="miss") == 1  # fmt: skip
    total = sum(v for (n, _), v in s.items() if n == "router_requests_total")
    assert total == 1
    assert value(s, "router_upstream_failures_total", model="small", code="upstream_timeout") == 2


async def test_rejected_requests_are_counted_without_route(h: Harness) -> None:
    assert (await h.post(b"{not json")).status_code == 400
    assert (
        await h.post({"model": "nope", "messages": [{"role": "user", "content": "x"}]})
    ).status_code == 404
    s = await h.samples()
    assert value(s, "router_requests_total", route="-", model="-", status="400", cache="-") == 1
    assert value(s, "router_requests_total", route="-", model="-", status="404", cache="-") == 1


async def test_latency_overhead_upstream_and_classifier_histograms(h: Harness) -> None:
    await h.chat()
    await h.chat(stream=True)
    s = await h.samples()
    assert value(s, "router_request_duration_seconds_count", route="auto") == 2
    assert value(s, "router_gateway_overhead_seconds_count", route="auto") == 2
    assert value(s, "router_upstream_duration_seconds_count", model="small") == 2
    assert value(s, "router_classifier_duration_seconds_count", source="fixed") == 2
    total = value(s, "router_request_duration_seconds_sum", route="auto")
    overhead = value(s, "router_gateway_overhead_seconds_sum", route="auto")
    upstream = value(s, "router_upstream_duration_seconds_sum", model="small")
    assert 0 < overhead <= total
    assert overhead + upstream == pytest.approx(total, rel=0.05, abs=0.002)
    assert value(s, "router_request_duration_seconds_bucket", route="auto", le="+Inf") == 2


async def test_overhead_excludes_upstream_wait(tmp_path: Path) -> None:
    class Slow(ScriptedBackend):
        async def complete(self, req, target):  # type: ignore[no-untyped-def]
            import asyncio

            await asyncio.sleep(0.2)
            return await super().complete(req, target)

    async for h in harness(write_policy(tmp_path), backend=Slow()):
        await h.chat()
        s = await h.samples()
        assert value(s, "router_upstream_duration_seconds_sum", model="small") >= 0.2
        assert value(s, "router_gateway_overhead_seconds_sum", route="auto") < 0.1


async def test_tokens_spend_and_savings_by_team_and_model(h: Harness) -> None:
    await h.chat()
    await h.chat(stream=True, stream_options={"include_usage": True})
    s = await h.samples()
    assert value(s, "router_tokens_total", team="-", model="small", kind="prompt") == 2000
    assert value(s, "router_tokens_total", team="-", model="small", kind="completion") == 1000
    # 1000 input at $0.1/M + 500 output at $0.2/M, twice
    assert value(s, "router_spend_usd_total", team="-", model="small") == pytest.approx(0.0004)
    # the strongest tier (backup: $3/$15 per M) would have cost 0.0105 each
    assert value(s, "router_savings_usd_total", team="-") == pytest.approx(2 * (0.0105 - 0.0002))


async def test_local_queue_depth_and_running(tmp_path: Path) -> None:
    class FakeLocal(ScriptedBackend):
        def stats(self) -> dict[str, LocalStats]:
            return {"tiny": LocalStats(waiting=3, running=1)}

    policy = POLICY.replace("\nroutes:", LOCAL_MODEL, 1)
    async for h in harness(write_policy(tmp_path, policy)):
        h.services.backends.register("local", FakeLocal())
        s = await h.samples()
        assert value(s, "router_local_queue_depth", model="tiny") == 3
        assert value(s, "router_local_running", model="tiny") == 1


async def test_gpu_memory_when_torch_sees_a_gpu(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 1,
        memory_allocated=lambda i: 1024,
        memory_reserved=lambda i: 4096,
        mem_get_info=lambda i: (10_000, 80_000),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    s = await h.samples()
    assert value(s, "router_gpu_memory_bytes", device="0", kind="allocated") == 1024
    assert value(s, "router_gpu_memory_bytes", device="0", kind="reserved") == 4096
    assert value(s, "router_gpu_memory_bytes", device="0", kind="free") == 10_000
    assert value(s, "router_gpu_memory_bytes", device="0", kind="total") == 80_000


async def test_no_gpu_metric_without_cuda(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = types.SimpleNamespace(is_available=lambda: False)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    s = await h.samples()
    assert not any(n == "router_gpu_memory_bytes" for n, _ in s)


async def test_drift_gauges(tmp_path: Path) -> None:
    policy = POLICY + "observability:\n  drift: {window: 20, min_samples: 10, check_every: 5}\n"
    async for h in harness(write_policy(tmp_path, policy)):
        await _drift_gauges(h)


async def _drift_gauges(h: Harness) -> None:
    ref = Reference(edges=(0.0, 0.5, 1.0), proportions=(0.5, 0.5), source="fixed")
    h.services.observability.drift = DriftMonitor(ref)
    s = await h.samples()
    assert value(s, "router_classifier_drift_psi") != value(s, "router_classifier_drift_psi")  # NaN
    for _ in range(10):
        await h.chat()  # every score is 0.1: all in the first bin
    s = await h.samples()
    assert value(s, "router_classifier_drift_window_samples") == 10
    assert value(s, "router_classifier_drift_psi") > 1.0
    assert value(s, "router_classifier_drift_alert") == 1
    assert value(s, "router_classifier_drift_alerts") == 1
    assert value(s, "router_classifier_drift_skipped") == 0


async def test_budget_gauges_are_set_on_refresh(h: Harness) -> None:
    from router.budget.reserve import BudgetScope

    class FakeBudgets:
        redis = object()

        async def spent_usd(self, scope: BudgetScope) -> tuple[float, float]:
            return 12.5, 0.0

    from router.observability.budget_gauge import BudgetGauge

    gauge = BudgetGauge(h.services.observability.metrics, FakeBudgets())  # type: ignore[arg-type]
    gauge.mark([BudgetScope("t:search", "team search", 50.0, "day")])
    await gauge.refresh()
    s = await h.samples()
    assert value(s, "router_budget_remaining_usd", scope="team search", window="day") == 37.5
    assert value(s, "router_budget_limit_usd", scope="team search", window="day") == 50.0


async def test_metrics_key_guards_the_endpoint(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTER_METRICS_KEY", "scrape-me")
    assert (await h.client.get("/metrics")).status_code == 401
    ok = await h.client.get("/metrics", headers={"authorization": "Bearer scrape-me"})
    assert ok.status_code == 200 and "router_requests_total" in ok.text


async def test_each_services_has_its_own_registry(tmp_path: Path) -> None:
    async for a in harness(write_policy(tmp_path)):
        await a.chat()
        async for b in harness(write_policy(tmp_path)):
            s = await b.samples()
            assert value(s, "router_requests_total", route="auto", model="small", status="200",
                         cache="miss") == 0  # fmt: skip


async def test_hook_failure_never_fails_the_request(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def get(self, *a: object) -> None:
            raise RuntimeError("metrics broke")

    monkeypatch.setattr(h.services.observability.metrics, "latency", Broken())
    assert (await h.chat()).status_code == 200
    assert h.services.observability.hook_errors == 1


async def test_stream_usage_backend_usage_is_counted(tmp_path: Path) -> None:
    backend = ScriptedBackend(reply="a b c", usage=Usage(7, 3))
    async for h in harness(write_policy(tmp_path), backend=backend):
        r = await h.chat(stream=True)
        assert r.status_code == 200
        s = await h.samples()
        assert value(s, "router_tokens_total", team="-", model="small", kind="prompt") == 7


async def test_upstream_server_error_then_fallback_counts_failure(h: Harness) -> None:
    h.backend.errors = {"small": [UpstreamServerError("x", model="small")] * 2}
    r = await h.chat()
    assert r.status_code == 200 and r.headers["x-router-model"] == "big"
    s = await h.samples()
    assert (
        value(s, "router_upstream_failures_total", model="small", code="upstream_server_error") == 2
    )
