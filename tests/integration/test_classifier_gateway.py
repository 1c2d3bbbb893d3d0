"""The trained classifier inside the gateway: same scores as `router score`, no heuristic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
LONG = (
    "Our team runs a small web shop that sells handmade ceramic mugs, bowls and plates. Orders "
    "arrive through the website and by email, and we pack them by hand in a shared workshop. "
    "Lately parcels have gone out late, two customers got the wrong glaze colour, and nobody "
    "knows which orders are waiting for a kiln firing. We are four people, we have no budget "
    "for new software this year, and we already use shared spreadsheets and a group chat. "
    "Suggest a simple weekly routine that would help us keep track of every order from "
    "payment to delivery, and explain who should do what on each day."
)
"""About 130 tokens: past the classifier's 48-token budget, so the cache embeds the whole turn."""
PROMPTS = ["hello", "Implement a thread-safe LRU cache in Python with O(1) get and put.", LONG]


def test_gateway_scores_match_router_score(tmp_path: Path) -> None:
    policy = tmp_path / "trained.yaml"
    policy.write_text(
        (ROOT / "policies" / "examples" / "mock.yaml")
        .read_text()
        .replace("classifier: {kind: heuristic}", "classifier: {kind: trained}")
        .replace("prices_file: ../prices.yaml", f"prices_file: {ROOT / 'policies/prices.yaml'}")
    )
    rows = tmp_path / "in.jsonl"
    rows.write_text(
        "".join(json.dumps({"id": str(i), "prompt": p}) + "\n" for i, p in enumerate(PROMPTS))
    )
    out = tmp_path / "out.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "router.cli.main",
            "score",
            "--input",
            str(rows),
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    expected = [json.loads(line)["score"] for line in out.read_text().splitlines()]
    with (
        MockUpstreamProcess() as mock,
        GatewayProcess(policy, env={"MOCK_UPSTREAM_URL": mock.url}) as gw,
    ):
        ready = httpx.get(gw.base_url + "/readyz").json()
        assert ready["checks"]["classifier"] == "TrainedClassifier"
        for prompt, score in zip(PROMPTS, expected, strict=True):
            r = httpx.post(
                gw.url + "/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
            )
            assert r.status_code == 200
            assert r.headers["x-router-score"] == f"{score:.4f}"  # exactly what `router score` says

        # the long prompt through the semantic cache: stored on a miss, then its paraphrase hits
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

        assert ask(LONG) == "miss"
        # the store runs in the background: wait until the exact entry (written just before
        # the vector, in the same store) is there
        assert any(ask(LONG) == "hit-exact" for _ in range(50))
        assert ask("Could you help me with this?\n\n" + LONG + "\n\nThanks!") == "hit-semantic"
