"""vLLM, llama.cpp server and Ollama through ``openai_compat``: the documented policy snippets
are valid, and each server gets the request its quirks need (checked on the mock upstream)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import yaml

from router.backends.base import Target
from router.backends.openai_compat import OpenAICompatBackend
from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import parse_chat_request
from router.testing.mock_config import MockConfig
from router.testing.mock_process import running_mock

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[2] / "docs" / "local-models.md"


def documented_models() -> dict[str, dict[str, Any]]:
    """The model entries of docs/local-models.md's YAML snippets, by name."""
    out: dict[str, dict[str, Any]] = {}
    for block in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S):
        for entry in yaml.safe_load(block) or []:
            if isinstance(entry, dict) and "name" in entry:
                out[entry["name"]] = entry
    return out


async def send(entry: dict[str, Any], url: str, body: bytes) -> dict[str, Any]:
    spec = ModelSpec.model_validate(
        {
            **entry,
            "endpoint": url,
            "api_key": "sk-test" if "api_key" in entry else None,
            "price": {"input_usd_per_mtok": 0, "output_usd_per_mtok": 0},
        }
    )
    policy = Policy(models=(spec,))
    async with aiohttp.ClientSession() as session:
        backend = OpenAICompatBackend(session)
        req = parse_chat_request(body)
        if req.stream:
            chunks = [c async for c in backend.stream(req, Target.of(policy, spec))]
            assert chunks[-1].usage is not None
        else:
            out = await backend.complete(req, Target.of(policy, spec))
            assert out.usage is not None
    async with httpx.AsyncClient() as c:
        last: dict[str, Any] = (await c.get(url.removesuffix("/v1") + "/_mock/stats")).json()[
            "last_requests"
        ][-1]
    return last


BODY = b'{"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8'


async def test_documented_snippets_cover_the_three_servers() -> None:
    models = documented_models()
    assert {"local-vllm", "local-llamacpp", "local-ollama"} <= set(models)


async def test_vllm_gets_its_served_name_and_extra_sampling_params() -> None:
    entry = documented_models()["local-vllm"]
    async with running_mock(MockConfig()) as url:
        sent = await send(entry, url, BODY + b', "top_k": 20, "repetition_penalty": 1.1}')
    assert sent["body"]["model"] == "smollm2"
    assert (sent["body"]["top_k"], sent["body"]["repetition_penalty"]) == (20, 1.1)
    assert sent["headers"]["authorization"] == "Bearer sk-test"


async def test_llamacpp_gets_cache_prompt_from_the_policy() -> None:
    entry = documented_models()["local-llamacpp"]
    async with running_mock(MockConfig()) as url:
        sent = await send(entry, url, BODY + b', "cache_prompt": false, "stream": true}')
    assert sent["body"]["cache_prompt"] is True  # the policy's extra_body wins
    assert sent["body"]["stream_options"] == {"include_usage": True}


async def test_ollama_gets_its_tag_and_no_authorization() -> None:
    entry = documented_models()["local-ollama"]
    async with running_mock(MockConfig()) as url:
        sent = await send(entry, url, BODY + b"}")
    assert sent["body"]["model"] == "qwen2.5:1.5b"
    assert "authorization" not in sent["headers"]
