"""The two-stage semantic cache end to end: a real gateway with the trained classifier (static
first stage, MiniLM confirmation) on a mock upstream and its own Redis 8 (slow: loads MiniLM)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
STORED = "How do I center a div in CSS?"
PARAPHRASE = "What's the way to center a div with CSS?"
"""MiniLM similarity 0.97 (a hit at 0.90); first stage 0.86."""
GUARDED = "How do I hide a div in CSS?"
"""One content word swapped: the guard refuses it before any transformer pass."""
TRANSFORMER_MISS = "How do I make a div scroll horizontally in CSS?"
"""Passes the guards and the first stage (0.92), but MiniLM says 0.56: the transformer refuses."""


def test_paraphrase_hits_and_near_misses_do_not(tmp_path: Path) -> None:
    policy = tmp_path / "trained.yaml"
    policy.write_text(
        (ROOT / "policies" / "examples" / "mock.yaml")
        .read_text()
        .replace("classifier: {kind: heuristic}", "classifier: {kind: trained}")
        .replace("prices_file: ../prices.yaml", f"prices_file: {ROOT / 'policies/prices.yaml'}")
    )
    assert "kind: trained" in policy.read_text()
    with (
        MockUpstreamProcess() as mock,
        GatewayProcess(policy, env={"MOCK_UPSTREAM_URL": mock.url}) as gw,
    ):

        def ask(text: str) -> str:
            r = httpx.post(
                gw.url + "/chat/completions",
                json={
                    "model": "auto",
                    "temperature": 0,
                    "messages": [{"role": "user", "content": text}],
                },
            )
            assert r.status_code == 200
            return r.headers["x-router-cache"]

        assert ask(STORED) == "miss"
        # the store runs in the background: the exact entry is written just before the vector
        assert any(ask(STORED) == "hit-exact" for _ in range(50))
        assert ask(PARAPHRASE) == "hit-semantic"
        assert ask(GUARDED) == "miss"
        assert ask(TRANSFORMER_MISS) == "miss"
