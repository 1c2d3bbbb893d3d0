"""The numpy engine of the ``local`` backend: a Llama checkpoint served without torch.

:class:`NumpyLocalModel` is an :class:`~router.backends.local_engine.Engine` like
:class:`router.backends.local_model.LocalModel`, with the same decode loop (one forward pass
per token over a KV cache, a cancel check between tokens, stop sequences on the text), but its
parts import in a fraction of a second: the forward pass is :mod:`router.backends.llama_numpy`,
the tokenizer is the ``tokenizers`` library's (Rust) reading ``tokenizer.json``, and the chat
template is rendered by jinja2 the way transformers' ``apply_chat_template`` renders it (a
sandboxed environment with ``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, its
``tojson``, ``raise_exception`` and ``strftime_now``, the special tokens as variables).

Everything here blocks; :mod:`router.backends.local` calls it from worker threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from router.backends.llama_numpy import F32, WEIGHTS, LlamaModel, unsupported_reason
from router.backends.local_decode import TextAssembler
from router.backends.local_engine import Event, Finished, FinishReason, SamplingParams, TextDelta
from router.policy.sections.local_model import LocalModelSettings

log = structlog.get_logger(__name__)

TOKENIZER = "tokenizer.json"
_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "pad_token")


def folder_reason(folder: Path) -> str | None:
    """Why the checkpoint in ``folder`` cannot run on this engine; None when it can.

    Reads ``config.json`` and the safetensors header only (milliseconds)."""
    for name in ("config.json", WEIGHTS, TOKENIZER):
        if not (folder / name).is_file():
            return f"no {name} in {folder}"
    try:
        config = json.loads((folder / "config.json").read_text())
        with (folder / WEIGHTS).open("rb") as f:
            header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    except (OSError, ValueError) as exc:
        return f"unreadable checkpoint: {exc!r}"
    if (why := unsupported_reason(config)) is not None:
        return why
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    if dtypes != {"F32"}:
        return f"weights are {sorted(dtypes)}, not float32"
    return None


class ChatTemplate:
    """A chat template rendered the way transformers' ``apply_chat_template`` renders it."""

    def __init__(self, source: str, special_tokens: dict[str, str]) -> None:
        import jinja2.ext
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message: str) -> None:
            raise jinja2.exceptions.TemplateError(message)

        def tojson(
            x: Any,
            ensure_ascii: bool = False,
            indent: int | None = None,
            separators: tuple[str, str] | None = None,
            sort_keys: bool = False,
        ) -> str:
            # transformers' override: jinja's own tojson escapes HTML characters.
            return json.dumps(
                x,
                ensure_ascii=ensure_ascii,
                indent=indent,
                separators=separators,
                sort_keys=sort_keys,
            )

        def strftime_now(fmt: str) -> str:
            return datetime.now().strftime(fmt)

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
        )
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = strftime_now
        self._template = env.from_string(source)
        self._special_tokens = dict(special_tokens)

    def render(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt text of ``messages`` with the assistant's generation prompt added."""
        text: str = self._template.render(
            **self._special_tokens,
            messages=[dict(m) for m in messages],
            tools=None,
            documents=None,
            add_generation_prompt=True,
        )
        return text


class NumpyLocalModel:
    """A Llama checkpoint folder on the CPU: the numpy :class:`Engine`."""

    def __init__(self, model: LlamaModel, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.model: LlamaModel | None = model
        self._context_window = model.config.max_positions
        self.tokenizer = Tokenizer.from_file(str(folder / TOKENIZER))
        tok_config = _read_json(folder / "tokenizer_config.json")
        specials = {
            name: token
            for name in _SPECIAL_TOKENS
            if (token := _token_text(tok_config.get(name))) is not None
        }
        template = _template_source(folder, tok_config)
        self.template = ChatTemplate(template, specials) if template else None
        self.eos_ids = _eos_ids(folder, self.tokenizer.token_to_id, specials.get("eos_token"))
        # Tokenizer calls from several threads at once: transformers' wrapper can fail with
        # "Already borrowed" there; the plain Rust tokenizer is guarded the same way.
        self._encode_lock = threading.Lock()

    @classmethod
    def load(cls, folder: Path, settings: LocalModelSettings) -> NumpyLocalModel:
        """Map the weights of ``folder`` (blocking; well under a second when the file is in the
        page cache). Raises ``ValueError`` for a checkpoint this engine cannot run."""
        if (why := folder_reason(folder)) is not None:
            raise ValueError(f"the numpy engine cannot run {folder}: {why}")
        if settings.threads is not None:
            _limit_blas_threads(settings.threads)
        return cls(LlamaModel.load(folder), folder)

    def close(self) -> None:
        """Drop the weights (the file mapping closes once no array refers to it)."""
        self.model = None

    @property
    def context_window(self) -> int:
        """The most positions (prompt plus output tokens) the model was trained for."""
        return self._context_window

    def encode_chat(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """The prompt's token ids, through the chat template when there is one."""
        if self.template is not None:
            text = self.template.render(messages)
        else:  # the transformers engine's fallback, the same text
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        with self._encode_lock:
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` (no special tokens added)."""
        with self._encode_lock:
            return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` without special tokens."""
        text: str = self.tokenizer.decode(list(ids), skip_special_tokens=True)
        return text

    def generate(
        self, prompt_ids: Sequence[int], params: SamplingParams, cancel: threading.Event
    ) -> Iterator[Event]:
        """Sample up to ``params.max_new_tokens`` tokens, yielding text as it becomes final.

        Ends at an end-of-sequence token or a stop sequence (``stop``), at the token limit
        (``length``), or silently when ``cancel`` is set.
        """
        model = self.model
        if model is None:
            raise RuntimeError("the model was closed")
        text = TextAssembler(self.decode, params.stop)
        sampler = Sampler(params)
        cache = model.new_cache(len(prompt_ids) + params.max_new_tokens)
        started = time.perf_counter()
        first_token_at = started
        produced = 0
        finish: FinishReason = "length"
        by_stop_sequence = False
        feed = [int(i) for i in prompt_ids]
        while produced < params.max_new_tokens:
            if cancel.is_set():
                return
            token = sampler.pick(model.forward(feed, cache))
            produced += 1
            if produced == 1:
                first_token_at = time.perf_counter()
            if token in self.eos_ids and not params.ignore_eos:
                finish = "stop"
                break
            step = text.push(token)
            if step.text:
                yield TextDelta(step.text)
            if step.stopped:
                finish, by_stop_sequence = "stop", True
                break
            feed = [token]
        if not by_stop_sequence and (tail := text.finish()):
            yield TextDelta(tail)
        now = time.perf_counter()
        yield Finished(
            finish, len(prompt_ids), produced, first_token_at - started, now - first_token_at
        )


class Sampler:
    """Greedy when temperature is 0, else temperature plus nucleus (top-p) sampling.

    The same rule as the transformers engine's sampler, on numpy's random generator: a
    ``seed`` reproduces its own samples, but not the transformers engine's (another generator).
    """

    def __init__(self, params: SamplingParams) -> None:
        self._temperature = params.temperature
        self._top_p = params.top_p
        self._rng = np.random.default_rng(params.seed)

    def pick(self, logits: F32) -> int:
        """The next token's id from the last position's ``logits``."""
        if self._temperature <= 0.0:
            return int(np.argmax(logits))
        scaled = logits.astype(np.float64) / self._temperature
        probs = np.exp(scaled - scaled.max())
        probs /= probs.sum()
        if self._top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            sorted_p = probs[order]
            cumulative = np.cumsum(sorted_p)
            sorted_p[cumulative - sorted_p > self._top_p] = 0.0  # keep the smallest set reaching it
            choice = self._rng.choice(len(sorted_p), p=sorted_p / sorted_p.sum())
            return int(order[choice])
        return int(self._rng.choice(len(probs), p=probs))


def _limit_blas_threads(threads: int) -> None:
    """Set the BLAS library's threads for the whole process (``threads`` setting)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        log.warning("local_model_threads_ignored", why="threadpoolctl is not installed")
        return
    threadpool_limits(limits=threads, user_api="blas")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return raw if isinstance(raw, dict) else {}


def _token_text(value: Any) -> str | None:
    """A special token as ``tokenizer_config.json`` gives it: a string or ``{"content": ...}``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _template_source(folder: Path, tok_config: dict[str, Any]) -> str | None:
    """``chat_template.jinja`` (transformers 5 saves it there), else the tokenizer config's
    ``chat_template`` (a string, or named templates of which ``default`` is used)."""
    file = folder / "chat_template.jinja"
    if file.is_file():
        return file.read_text()
    value = tok_config.get("chat_template")
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {t.get("name"): t.get("template") for t in value if isinstance(t, dict)}
        default = named.get("default")
        return default if isinstance(default, str) else None
    return None


def _eos_ids(
    folder: Path, token_to_id: Callable[[str], int | None], eos_token: str | None
) -> frozenset[int]:
    """End-of-sequence ids from the generation config, the model config and the tokenizer's
    eos token (the transformers engine's three sources)."""
    ids: set[int] = set()
    for name in ("generation_config.json", "config.json"):
        value = _read_json(folder / name).get("eos_token_id")
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(int(v) for v in value)
    if eos_token is not None and (tok_id := token_to_id(eos_token)) is not None:
        ids.add(tok_id)
    return frozenset(ids)
