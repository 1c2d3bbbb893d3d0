"""``/v1/embeddings`` end to end: the openai SDK against a `router serve` process whose policy
serves the gateway's own encoder (all-MiniLM-L6-v2) and a hosted model on the mock upstream."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import openai
import pytest

from router.ledger.record import LedgerRecord
from router.testing.gateway_process import GatewayProcess
from router.testing.mock_process import MockUpstreamProcess
from tests.integration.budget_support import gateway, make_key, own_redis, write_policy
from tests.integration.protocol_support import ledger_row, ledger_rows

pytestmark = pytest.mark.integration

EMBEDDING_MODELS = (
    "  - name: minilm\n"
    "    kind: embedding\n"
    "    backend: encoder\n"
    "    tier: local\n"
    "    price: {input_usd_per_mtok: 0.01, output_usd_per_mtok: 0}\n"
    "  - name: mock-embed\n"
    "    kind: embedding\n"
    "    backend: openai_compat\n"
    "    upstream_model: text-embedding-3-small\n"
    "    endpoint: ${MOCK_UPSTREAM_URL}\n"
    "    price: {input_usd_per_mtok: 0.02, output_usd_per_mtok: 0}\n"
)


class Setup:
    def __init__(self, mock: MockUpstreamProcess, gw: GatewayProcess, redis_url: str) -> None:
        self.mock, self.gw, self.redis_url = mock, gw, redis_url
        self.key = ""

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gw.url, api_key=self.key, max_retries=0, timeout=60)

    def rows(self) -> list[LedgerRecord]:
        return ledger_rows(self.redis_url)

    def row(self, request_id: str) -> LedgerRecord:
        return ledger_row(self.redis_url, request_id)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("embeddings")
    policy = write_policy(tmp, auth="keys", extra_models=EMBEDDING_MODELS)
    with (
        own_redis(tmp) as redis_url,
        MockUpstreamProcess() as mock,
        gateway(policy, mock.url, redis_url, tmp / "gw.log") as gw,
    ):
        s = Setup(mock, gw, redis_url)
        s.key, _ = make_key(redis_url, "team-e", 100.0)
        yield s


def test_local_encoder_float(setup: Setup) -> None:
    raw = setup.client().embeddings.with_raw_response.create(
        model="minilm", input=["a cat sat on the mat", "a kitten on a rug", "bond yields rose"]
    )
    resp = raw.parse()
    vectors = np.asarray([d.embedding for d in resp.data])
    assert vectors.shape == (3, 384) and resp.model == "minilm"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # similar texts are closer
    assert [d.index for d in resp.data] == [0, 1, 2]
    assert resp.usage.prompt_tokens > 0 and resp.usage.total_tokens == resp.usage.prompt_tokens
    cost = float(raw.headers["x-router-cost-usd"])
    assert cost == pytest.approx(resp.usage.prompt_tokens * 0.01 / 1e6, rel=1e-6)
    assert raw.headers["x-router-model"] == "minilm"
    row = setup.row(raw.headers["x-request-id"])
    assert row.model == "minilm" and row.prompt_tokens == resp.usage.prompt_tokens
    assert row.cost_usd == pytest.approx(cost, rel=1e-6) and row.status == 200


def test_local_encoder_base64_matches_float(setup: Setup) -> None:
    client = setup.client()
    floats = client.embeddings.create(model="minilm", input="hello there").data[0].embedding
    r = httpx.post(
        setup.gw.url + "/embeddings",
        json={"model": "minilm", "input": "hello there", "encoding_format": "base64"},
        headers={"authorization": f"Bearer {setup.key}"},
        timeout=60,
    )
    packed = r.json()["data"][0]["embedding"]
    decoded = np.frombuffer(base64.b64decode(packed), dtype="<f4")
    assert np.allclose(decoded, floats, atol=1e-6)
    # the SDK asks for base64 by default and decodes it itself
    assert len(client.embeddings.create(model="minilm", input="x").data[0].embedding) == 384


def test_hosted_model_on_the_mock(setup: Setup) -> None:
    raw = setup.client().embeddings.with_raw_response.create(
        model="mock-embed", input=["one", "two"], dimensions=8, encoding_format="float"
    )
    resp = raw.parse()
    assert [len(d.embedding) for d in resp.data] == [8, 8] and resp.model == "mock-embed"
    sent = setup.mock.stats()["last_requests"][-1]["body"]
    assert sent["model"] == "text-embedding-3-small" and sent["dimensions"] == 8
    row = setup.row(raw.headers["x-request-id"])
    assert row.model == "mock-embed" and row.cost_usd > 0


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "minilm"}, 400, "input"),
        ({"model": "minilm", "input": ""}, 400, "input"),
        ({"model": "minilm", "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"model": "minilm", "input": [1, 2, 3]}, 400, "input"),
        ({"model": "minilm", "input": "x", "dimensions": 128}, 400, "dimensions"),
        ({"model": "mock-local", "input": "x"}, 400, "model"),
        ({"model": "nope", "input": "x"}, 404, "model"),
    ],
)
def test_bad_input_names_the_field_and_charges_nothing(
    setup: Setup, body: dict[str, Any], status: int, param: str
) -> None:
    r = httpx.post(
        setup.gw.url + "/embeddings",
        json=body,
        headers={"authorization": f"Bearer {setup.key}"},
        timeout=60,
    )
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param
    assert "x-router-cost-usd" not in r.headers
    assert not [row for row in setup.rows() if row.request_id == r.headers["x-request-id"]]


def test_chat_refuses_an_embedding_model(setup: Setup) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        setup.client().chat.completions.create(
            model="minilm", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.body["param"] == "model"  # type: ignore[index]


def test_metrics_count_embeddings(setup: Setup) -> None:
    setup.client().embeddings.create(model="minilm", input="count me")
    text = httpx.get(setup.gw.base_url + "/metrics", timeout=30).text
    lines = [ln for ln in text.splitlines() if 'model="minilm"' in ln]
    assert any(ln.startswith("router_requests_total") and 'status="200"' in ln for ln in lines)
    assert any(ln.startswith("router_spend_usd_total") for ln in lines)
    assert any(ln.startswith("router_tokens_total") and 'kind="prompt"' in ln for ln in lines)
