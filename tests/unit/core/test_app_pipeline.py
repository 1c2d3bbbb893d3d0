"""The HTTP surface and the pipeline, in process, with the seams' test doubles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import orjson
import pytest

from router.app import create_app
from router.auth import Authenticator
from router.backends.registry import BackendRegistry
from router.backends.scripted import ScriptedBackend
from router.classify.fixed import FixedClassifier
from router.errors import StreamInterrupted, UpstreamBadRequest, UpstreamTimeout
from router.policy.store import PolicyStore
from router.protocol.chat_response import Usage
from router.services import Services
from router.settings import Settings
from tests.unit.core.policy_text import POLICY, write_policy

MSG = [{"role": "user", "content": "hello"}]


class Harness:
    def __init__(
        self,
        services: Services,
        client: httpx.AsyncClient,
        backend: ScriptedBackend,
        classifier: FixedClassifier,
    ) -> None:
        self.services, self.client, self.backend, self.classifier = (
            services,
            client,
            backend,
            classifier,
        )

    async def post(self, body: object, **headers: str) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.client.post("/v1/chat/completions", content=content, headers=headers)


async def _harness(path: Path, master_key: str | None = None) -> AsyncIterator[Harness]:
    settings = Settings(policy_path=path, master_key=master_key, access_log=True)
    store = PolicyStore.open(path)
    http = aiohttp.ClientSession()
    registry = BackendRegistry(http)
    backend = ScriptedBackend(reply="hi there friend", usage=Usage(1000, 500))
    registry.register("openai_compat", backend)
    classifier = FixedClassifier(score=0.1)
    services = Services(
        settings, store, http, registry, classifier, Authenticator(master_key), ready=True
    )
    app = create_app(settings, store)
    app.state.services = services
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield Harness(services, client, backend, classifier)
    await http.close()


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    async for x in _harness(write_policy(tmp_path)):
        yield x


async def test_json_answer_with_router_headers(h: Harness) -> None:
    r = await h.post({"model": "auto", "messages": MSG})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "hi there friend"
    assert r.headers["x-router-model"] == "small"
    assert r.headers["x-router-tier"] == "local"
    assert r.headers["x-router-score"] == "0.1000"
    assert r.headers["x-router-policy"] == h.services.policies.current.hash
    # 1000 input tokens at $0.1/M + 500 output tokens at $0.2/M
    assert float(r.headers["x-router-cost-usd"]) == pytest.approx(0.0002, abs=1e-12)
    assert len(r.headers["x-request-id"]) == 32
    assert h.classifier.calls == 1


async def test_client_request_id_is_kept(h: Harness) -> None:
    r = await h.post({"model": "auto", "messages": MSG}, **{"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


async def test_named_model_skips_classifier(h: Harness) -> None:
    r = await h.post({"model": "big", "messages": MSG})
    assert r.headers["x-router-model"] == "big" and "x-router-score" not in r.headers
    assert h.classifier.calls == 0


async def test_classifier_failure_falls_back_to_heuristic(h: Harness) -> None:
    h.classifier.fail = True
    r = await h.post({"model": "auto", "messages": MSG})
    assert r.status_code == 200 and "x-router-score" in r.headers
    assert h.services.counters["classifier_errors"] == 1


def _events(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n\n") if line.startswith("data: ")]


async def test_stream_without_usage_strips_the_usage_chunk(h: Harness) -> None:
    r = await h.post({"model": "auto", "messages": MSG, "stream": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    ev = _events(r.text)
    assert ev[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in ev[:-1]]
    assert all("usage" not in c for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "hi there friend"
    sent = h.backend.calls[-1][1]
    assert sent.stream


async def test_stream_with_usage_adds_cost(h: Harness) -> None:
    r = await h.post(
        {
            "model": "auto",
            "messages": MSG,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    )
    chunks = [orjson.loads(e) for e in _events(r.text)[:-1]]
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["prompt_tokens"] == 1000 and usage["cost_usd"] == pytest.approx(0.0002)


async def test_stream_cut_midway_sends_error_event_then_done(h: Harness) -> None:
    h.backend.cut_after = 1
    h.backend.cut_error = StreamInterrupted("cut", model="small")
    r = await h.post({"model": "auto", "messages": MSG, "stream": True})
    ev = _events(r.text)
    assert ev[-1] == "[DONE]"
    err = orjson.loads(ev[-2])["error"]
    assert err["code"] == "stream_interrupted" and err["type"] == "upstream_error"


async def test_upstream_timeout_everywhere_is_504(h: Harness) -> None:
    h.backend.errors = {m: [UpstreamTimeout("t", model=m)] * 2 for m in ("small", "big", "backup")}
    r = await h.post({"model": "auto", "messages": MSG})
    assert r.status_code == 504
    assert r.json()["error"]["code"] == "upstream_timeout"
    assert r.headers["x-router-policy"]


async def test_upstream_bad_request_passes_as_400(h: Harness) -> None:
    h.backend.errors = {"small": [UpstreamBadRequest("context too long", model="small")]}
    r = await h.post({"model": "auto", "messages": MSG})
    assert r.status_code == 400 and "context too long" in r.json()["error"]["message"]


async def test_body_over_limit_is_413(h: Harness) -> None:
    r = await h.post({"model": "auto", "messages": [{"role": "user", "content": "x" * 3000}]})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    assert h.backend.calls == []


async def test_bad_input_never_reaches_a_backend(h: Harness) -> None:
    for body in (b"{", b'{"model": "auto", "messages": []}', {"model": "zzz", "messages": MSG}):
        r = await h.post(body)
        assert r.status_code in (400, 404)
        assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert h.backend.calls == [] and h.classifier.calls == 0


async def test_unknown_path_and_method_in_openai_shape(h: Harness) -> None:
    r = await h.client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = await h.client.get("/v1/chat/completions")
    assert r.status_code == 405


async def test_models_health_ready(h: Harness) -> None:
    ids = [m["id"] for m in (await h.client.get("/v1/models")).json()["data"]]
    assert ids == ["auto", "locked", "small", "big", "backup"]
    assert (await h.client.get("/healthz")).json() == {"status": "ok"}
    ready = (await h.client.get("/readyz")).json()
    assert ready["status"] == "ready"


async def test_keys_required(tmp_path: Path) -> None:
    path = write_policy(tmp_path, POLICY.replace("auth: none", "auth: keys"))
    async for h in _harness(path, master_key="sk-master"):
        r = await h.post({"model": "auto", "messages": MSG})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        r = await h.post({"model": "auto", "messages": MSG}, authorization="Bearer nope")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        r = await h.post({"model": "auto", "messages": MSG}, authorization="Bearer sk-master")
        assert r.status_code == 200


async def test_target_strong_share_sets_the_threshold_from_recent_scores(tmp_path: Path) -> None:
    policy = POLICY.replace(
        "  - alias: locked\n", "    target_strong_share: 0.3\n  - alias: locked\n"
    ).replace(
        "      - {name: mid, model: big, min_score: 0.5}\n"
        "      - {name: hosted, model: backup, min_score: 0.8}\n",
        "      - {name: hosted, model: big, min_score: 0.5}\n",
    )
    async for h in _harness(write_policy(tmp_path, policy)):
        # scores spread evenly over [0, 0.4): the policy's 0.5 would send nothing to hosted
        scores = [((i * 37) % 200) / 500 for i in range(300)]
        hosted = 0
        for i, score in enumerate(scores):
            h.classifier.score = score
            r = await h.post({"model": "auto", "messages": MSG})
            if i >= 150 and r.headers["x-router-model"] == "big":
                hosted += 1
        assert 0.22 <= hosted / 150 <= 0.38
