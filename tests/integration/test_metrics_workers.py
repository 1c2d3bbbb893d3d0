"""``router serve --workers 2`` with ``PROMETHEUS_MULTIPROC_DIR``: /metrics sums both workers."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_multiprocess_metrics_aggregate_workers(tmp_path: Path) -> None:
    mp = tmp_path / "prom"
    mp.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(mp), "ROUTER_ACCESS_LOG": "0"}
    with MockUpstreamProcess() as mock:
        env["MOCK_UPSTREAM_URL"] = mock.url
        policy = ROOT / "policies" / "examples" / "mock.yaml"
        with GatewayProcess(policy, workers=2, env=env, log_path=tmp_path / "gw.log") as gw:
            n = 24
            for i in range(n):  # a new connection each time, so both workers answer some
                body = {"model": "auto", "messages": [{"role": "user", "content": f"hi {i}"}]}
                r = httpx.post(gw.base_url + "/v1/chat/completions", json=body, timeout=30)
                assert r.status_code == 200
            text = httpx.get(gw.base_url + "/metrics", timeout=30).text
    total = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("router_requests_total{")
    )
    assert total == n
    assert "router_classifier_drift_window_samples" in text  # the answering worker's own values
    assert len(list(mp.glob("counter_*.db"))) >= 1
