"""The Grafana dashboard in deploy/ is valid and only queries metrics the gateway exports."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit.core.policy_text import write_policy
from tests.unit.observability.harness import harness

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "hybrid-router.json"


def _exprs(doc: dict[str, object]) -> list[str]:
    panels = doc["panels"]
    assert isinstance(panels, list)
    return [t["expr"] for p in panels for t in p.get("targets", [])]


async def test_dashboard_queries_only_exported_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["uid"] == "hybrid-router" and doc["panels"]
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        device_count=lambda: 1,
        memory_allocated=lambda i: 1,
        memory_reserved=lambda i: 1,
        mem_get_info=lambda i: (1, 2),
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    exported: set[str] = set()
    async for h in harness(write_policy(tmp_path)):
        await h.chat()
        text = (await h.client.get("/metrics")).text
        for fam in text_string_to_metric_families(text):
            exported |= {fam.name, f"{fam.name}_total", f"{fam.name}_bucket"}
            exported |= {s.name for s in fam.samples}
    used = {m for e in _exprs(doc) for m in re.findall(r"\brouter_[a-z_]+", e)}
    assert used, "the dashboard queries no router metric"
    assert used <= exported, sorted(used - exported)
    assert {"router_gateway_overhead_seconds_bucket", "router_classifier_drift_psi"} <= used
