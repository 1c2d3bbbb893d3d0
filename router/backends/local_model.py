"""Loading a causal LM with transformers, and generating from it token by token.

Everything here blocks: :class:`LocalModel.load` and :meth:`LocalModel.generate` run in worker
threads started by :mod:`router.backends.local`, never on the event loop. Generation is a plain
decode loop over the model's KV cache (one forward pass per token) rather than
``model.generate``: the loop yields each token as it is sampled, checks a cancel flag between
tokens (a client that goes away stops the work), and applies stop sequences on the text.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import structlog
import torch

from router.backends.local_decode import TextAssembler
from router.backends.local_engine import Event, Finished, FinishReason, SamplingParams, TextDelta
from router.backends.local_source import ResolvedSource, resolve_source
from router.policy.sections.local_model import LocalModelSettings

log = structlog.get_logger(__name__)

__all__ = ["LocalModel", "ResolvedSource", "pick_device", "pick_dtype", "resolve_source"]


def pick_device(setting: str) -> torch.device:
    """``auto`` means CUDA when torch sees a GPU, else the CPU."""
    if setting == "cuda" or (setting == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def pick_dtype(setting: str, device: torch.device) -> torch.dtype:
    """``auto`` means bfloat16 (float16 on GPUs without it) on CUDA, float32 on the CPU."""
    if setting != "auto":
        dtype: torch.dtype = getattr(torch, setting)
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


class LocalModel:
    """A loaded model and tokenizer on one device: the real :class:`Engine`."""

    def __init__(self, model: Any, tokenizer: Any, device: torch.device) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = device
        self._eos_ids = _eos_ids(model, tokenizer)
        # transformers 5.x renamed the KV cache argument and output from ``past_key_values``
        # to ``cache`` (the old name warns, and goes in 5.40); the range allows both.
        self._cache_arg = _cache_argument(model)
        # A fast tokenizer's encode may change its truncation state: concurrent calls from
        # several threads can fail with "Already borrowed". Decoding needs no lock.
        self._encode_lock = threading.Lock()

    @classmethod
    def load(cls, settings: LocalModelSettings) -> LocalModel:
        """Load from local files only (blocking: seconds to minutes)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if settings.threads is not None:
            torch.set_num_threads(settings.threads)
        where = resolve_source(settings)
        device = pick_device(settings.device)
        dtype = pick_dtype(settings.dtype, device)
        kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
        folder = where.folder
        if where.gguf_file is not None:
            cached = _cached_checkpoint(where, dtype) if settings.cache_converted else None
            if cached is None:
                kwargs["gguf_file"] = where.gguf_file
            else:
                folder = cached
        tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
        model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, **kwargs)
        return cls(model.to(device), tokenizer, device)

    def close(self) -> None:
        """Drop the weights; on CUDA, give the cached memory back to the driver."""
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    @property
    def context_window(self) -> int:
        """The most positions (prompt plus output tokens) the model was trained for."""
        n = getattr(self.model.config, "max_position_embeddings", None)
        return int(n) if isinstance(n, int) else 2048

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The prompt's token ids, through the tokenizer's chat template when it has one."""
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template(
                list(messages), add_generation_prompt=True, tokenize=False
            )
        else:
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        with self._encode_lock:
            ids = tok(text, add_special_tokens=False)["input_ids"]
        return [int(i) for i in ids]

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens added)."""
        with self._encode_lock:
            return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` without special tokens."""
        text: str = self.tokenizer.decode(
            list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False
        )
        return text

    def generate(
        self, prompt_ids: Sequence[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[Event]:
        """Sample up to ``params.max_new_tokens`` tokens, yielding text as it becomes final.

        Ends at an end-of-sequence token or a stop sequence (``stop``), at the token limit
        (``length``), or silently when ``cancel`` is set.
        """
        text = TextAssembler(self.decode, params.stop)
        sampler = _Sampler(params, self.device)
        started = time.perf_counter()
        first_token_at = started
        produced = 0
        finish: FinishReason = "length"
        by_stop_sequence = False
        with torch.inference_mode():
            input_ids = torch.tensor([list(prompt_ids)], dtype=torch.long, device=self.device)
            past: Any = None
            while produced < params.max_new_tokens:
                if cancel.is_set():
                    return
                out = self.model(
                    input_ids=input_ids, use_cache=True, logits_to_keep=1, **{self._cache_arg: past}
                )  # logits of the last position only: a long prompt's full logits are huge
                past = getattr(out, self._cache_arg)
                token = sampler.pick(out.logits[0, -1, :])
                produced += 1
                if produced == 1:
                    first_token_at = time.perf_counter()
                if token in self._eos_ids and not params.ignore_eos:
                    finish = "stop"
                    break
                step = text.push(token)
                if step.text:
                    yield TextDelta(step.text)
                if step.stopped:
                    finish, by_stop_sequence = "stop", True
                    break
                input_ids = torch.tensor([[token]], dtype=torch.long, device=self.device)
        if not by_stop_sequence and (tail := text.finish()):
            yield TextDelta(tail)
        now = time.perf_counter()
        yield Finished(
            finish, len(prompt_ids), produced, first_token_at - started, now - first_token_at
        )


def _cached_checkpoint(where: ResolvedSource, dtype: torch.dtype) -> Path | None:
    """The converted checkpoint of a GGUF source in the models directory, built on first use
    (:mod:`router.backends.local_cache`); None, with a warning, when it cannot be written."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from router.backends.local_cache import cache_folder, ensure_cached
    from router.classify.encoder import models_dir

    assert where.gguf_file is not None
    gguf = where.folder / where.gguf_file
    kwargs: dict[str, Any] = {"local_files_only": True, "gguf_file": where.gguf_file}

    def convert() -> tuple[Any, Any]:
        tokenizer = AutoTokenizer.from_pretrained(str(where.folder), **kwargs)
        model = AutoModelForCausalLM.from_pretrained(str(where.folder), dtype=dtype, **kwargs)
        return model, tokenizer

    try:
        dtype_name = str(dtype).removeprefix("torch.")
        return ensure_cached(cache_folder(gguf, dtype_name, models_dir()), convert)
    except OSError as exc:  # a read-only or full models directory: load the slow way
        log.warning("local_model_cache_unavailable", gguf=str(gguf), error=repr(exc))
        return None


def _cache_argument(model: Any) -> str:
    """The name under which ``model.forward`` takes and returns its KV cache."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


class _Sampler:
    """Greedy when temperature is 0, else temperature plus nucleus (top-p) sampling."""

    def __init__(self, params: SamplingParams, device: torch.device) -> None:
        self._temperature = params.temperature
        self._top_p = params.top_p
        self._gen: torch.Generator | None = None
        if params.seed is not None:
            self._gen = torch.Generator(device=device)
            self._gen.manual_seed(params.seed)

    def pick(self, logits: torch.Tensor) -> int:
        if self._temperature <= 0.0:
            return int(torch.argmax(logits).item())
        probs = torch.softmax(logits.float() / self._temperature, dim=-1)
        if self._top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            cumulative = torch.cumsum(sorted_p, dim=-1)
            drop = cumulative - sorted_p > self._top_p  # keep the smallest set reaching top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            choice = torch.multinomial(sorted_p, 1, generator=self._gen)
            return int(order[choice].item())
        return int(torch.multinomial(probs, 1, generator=self._gen).item())


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """End-of-sequence ids from the generation config, the model config and the tokenizer."""
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    tok_eos = getattr(tokenizer, "eos_token_id", None)
    if isinstance(tok_eos, int):
        ids.add(tok_eos)
    return frozenset(ids)
