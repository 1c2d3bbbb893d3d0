"""The numpy engine against transformers on tiny random-weight Llamas: logits, greedy tokens,
the chat template, decoding, limits, stops, sampling, and the engine choice."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="the reference (transformers) needs torch")
pytest.importorskip("transformers")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from router.backends.llama_numpy import LlamaModel, unsupported_reason
from router.backends.local_engine import Event, Finished, SamplingParams, TextDelta
from router.backends.local_load import load_engine, numpy_folder
from router.backends.local_numpy import NumpyLocalModel
from router.policy.sections.local_model import LocalModelSettings
from tests.unit.backends.tiny_llama import build_tiny_llama

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
CHATS = [
    QUESTION,
    [{"role": "system", "content": "Be brief."}, *QUESTION],
    [*QUESTION, {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "café?"}],
]


@pytest.fixture(scope="module", params=[True, False], ids=["tied", "untied"])
def tiny_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), tie=request.param)


@pytest.fixture(scope="module")
def engine(tiny_dir: Path) -> NumpyLocalModel:
    return NumpyLocalModel.load(tiny_dir, LocalModelSettings(source=str(tiny_dir)))


def generate(model: NumpyLocalModel, params: SamplingParams) -> tuple[str, Finished]:
    events: list[Event] = list(
        model.generate(model.encode_chat(QUESTION), params, threading.Event())
    )
    *deltas, end = events
    assert isinstance(end, Finished)
    return "".join(d.text for d in deltas if isinstance(d, TextDelta)), end


def test_logits_and_greedy_tokens_match_transformers(tiny_dir: Path) -> None:
    reference: Any = AutoModelForCausalLM.from_pretrained(str(tiny_dir), dtype=torch.float32)
    reference.eval()
    ours = LlamaModel.load(tiny_dir)
    ids = [5, 17, 42, 99, 3, 250, 7]
    with torch.inference_mode():
        expected = reference(input_ids=torch.tensor([ids])).logits[0, -1].numpy()
        greedy = reference.generate(
            torch.tensor([ids]), max_new_tokens=12, do_sample=False, eos_token_id=None
        )[0, len(ids) :].tolist()
    cache = ours.new_cache(len(ids) + 12)
    logits = ours.forward(ids, cache)
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    tokens: list[int] = []
    for _ in range(12):
        tokens.append(int(np.argmax(logits)))
        logits = ours.forward([tokens[-1]], cache)
    assert tokens == greedy


def test_the_kv_cache_gives_the_logits_of_a_whole_pass(tiny_dir: Path) -> None:
    model = LlamaModel.load(tiny_dir)
    ids = [5, 17, 42, 99, 3, 250, 7]
    whole = model.forward(ids, model.new_cache(len(ids)))
    cache = model.new_cache(len(ids))
    model.forward(ids[:3], cache)
    for token in ids[3:]:
        last = model.forward([token], cache)
    np.testing.assert_allclose(last, whole, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="exceed"):
        model.forward([1], cache)
    in_pieces = model.forward(ids, model.new_cache(len(ids)), chunk=3)  # 3 + 3 + 1 tokens
    np.testing.assert_allclose(in_pieces, whole, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chat", CHATS)
def test_prompt_ids_and_decoding_match_transformers(
    engine: NumpyLocalModel, tiny_dir: Path, chat: list[dict[str, str]]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    ids = engine.encode_chat(chat)
    assert ids == expected
    assert engine.decode(ids) == tokenizer.decode(
        ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )
    assert engine.count_tokens("café au lait") == len(
        tokenizer("café au lait", add_special_tokens=False)["input_ids"]
    )
    assert engine.eos_ids == {tokenizer.eos_token_id}


def test_greedy_generation_counts_and_limits(engine: NumpyLocalModel) -> None:
    a, end_a = generate(engine, SamplingParams(max_new_tokens=5, temperature=0))
    b, end_b = generate(engine, SamplingParams(max_new_tokens=5, temperature=0))
    assert (a, end_a.completion_tokens) == (b, end_b.completion_tokens)
    assert end_a.prompt_tokens == len(engine.encode_chat(QUESTION))
    # Random weights never pick the end token in 5 greedy steps here.
    assert (end_a.finish_reason, end_a.completion_tokens) == ("length", 5)


def test_a_stop_sequence_cuts_the_output_and_finishes_with_stop(engine: NumpyLocalModel) -> None:
    full, _ = generate(engine, SamplingParams(max_new_tokens=30, temperature=0.9, seed=7))
    assert len(full) >= 4, full
    stop = full[2:4]
    cut, end = generate(engine, SamplingParams(30, 0.9, 1.0, (stop,), 7))
    assert end.finish_reason == "stop"
    assert cut == full[: full.index(stop)]


def test_the_end_of_sequence_token_finishes_with_stop(engine: NumpyLocalModel) -> None:
    model = engine.model
    assert model is not None
    ids = engine.encode_chat(QUESTION)
    first = int(np.argmax(model.forward(ids, model.new_cache(len(ids)))))
    saved = engine.eos_ids
    engine.eos_ids = frozenset({first})  # greedy's first pick ends it
    try:
        text, end = generate(engine, SamplingParams(max_new_tokens=10, temperature=0))
        assert (text, end.finish_reason, end.completion_tokens) == ("", "stop", 1)
        _, end = generate(engine, SamplingParams(max_new_tokens=3, temperature=0, ignore_eos=True))
        assert (end.finish_reason, end.completion_tokens) == ("length", 3)
    finally:
        engine.eos_ids = saved


def test_seeded_sampling_repeats_and_seeds_differ(engine: NumpyLocalModel) -> None:
    a, _ = generate(engine, SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=1))
    b, _ = generate(engine, SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=1))
    c, _ = generate(engine, SamplingParams(max_new_tokens=16, temperature=1.0, top_p=0.9, seed=2))
    assert a == b
    assert a != c


def test_a_set_cancel_flag_stops_before_the_first_token(engine: NumpyLocalModel) -> None:
    cancel = threading.Event()
    cancel.set()
    assert list(engine.generate(engine.encode_chat(QUESTION), SamplingParams(8), cancel)) == []


def test_the_engine_choice(tiny_dir: Path, tmp_path: Path) -> None:
    source = str(tiny_dir)
    assert numpy_folder(LocalModelSettings(source=source, device="cpu"))[0] == tiny_dir
    for other in (
        LocalModelSettings(source=source, engine="transformers"),
        LocalModelSettings(source=source, dtype="bfloat16"),
    ):
        folder, why = numpy_folder(other)
        assert folder is None and why
    # Another architecture: auto falls back to transformers, an explicit numpy refuses.
    odd = tmp_path / "odd"
    odd.mkdir()
    for f in tiny_dir.iterdir():
        (odd / f.name).write_bytes(f.read_bytes())
    config = json.loads((odd / "config.json").read_text())
    (odd / "config.json").write_text(json.dumps({**config, "model_type": "mistral"}))
    assert numpy_folder(LocalModelSettings(source=str(odd)))[0] is None
    with pytest.raises(ValueError, match="not llama"):
        load_engine(LocalModelSettings(source=str(odd), engine="numpy"))
    assert type(load_engine(LocalModelSettings(source=str(odd)))).__name__ == "LocalModel"


def test_unsupported_configs_are_named() -> None:
    base = {"model_type": "llama", "rope_parameters": {"rope_type": "default"}}
    assert unsupported_reason(base) is None
    assert unsupported_reason({**base, "rope_parameters": {"rope_type": "llama3"}})
    assert unsupported_reason({**base, "rope_scaling": {"type": "linear", "factor": 2.0}})
    assert unsupported_reason({**base, "attention_bias": True})
    assert unsupported_reason({**base, "hidden_act": "gelu"})


def test_loading_imports_neither_torch_nor_transformers(tiny_dir: Path) -> None:
    code = (
        "import sys\n"
        "from router.backends.local_load import load_engine\n"
        "from router.policy.sections.local_model import LocalModelSettings\n"
        f"e = load_engine(LocalModelSettings(source={str(tiny_dir)!r}, device='cpu'))\n"
        "print(type(e).__name__, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split()[-3:] == ["NumpyLocalModel", "False", "False"], out.stderr
