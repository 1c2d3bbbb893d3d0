"""Prompt tokens counted with the target model's own tokenizer, where the gateway knows it.

* ``backend: local``: the loaded model's tokenizer and chat template
  (:meth:`router.backends.local.LocalBackend.prompt_tokens`); unknown until it is loaded.
* a hosted model whose upstream name tiktoken maps to an encoding (OpenAI's models: ``gpt-4o``
  and later use ``o200k_base``, ``gpt-4`` and ``gpt-3.5`` ``cl100k_base``), when that encoding's
  file is in ``TIKTOKEN_CACHE_DIR`` (by default the copies litellm ships in
  ``litellm_core_utils/tokenizers``, the files its ``token_counter`` uses offline). Counted as
  OpenAI bills a chat prompt: the text's tokens, 4 per message (role and separators) and 3 to
  prime the reply.
* anything else (Anthropic's Claude 3 and later, whose tokenizer is not public; models litellm
  would fetch a Hugging Face tokenizer for; upstream names tiktoken does not know): unknown, and
  the caller keeps its estimate. litellm's own ``token_counter`` is not called: it answers
  ``cl100k_base`` counts for models it does not know (a wrong tokenizer, not an unknown one) and
  may download Hugging Face tokenizers.

Nothing here downloads: an encoding whose file is missing counts as unknown. Loading an
encoding takes a few hundred milliseconds and counting a long prompt milliseconds, so callers
run :meth:`TokenCounter.count` in a worker thread and :meth:`TokenCounter.warm` at startup.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import structlog

from router.policy.schema import ModelSpec, Policy
from router.protocol.chat_request import ChatRequest

log = structlog.get_logger(__name__)

TOKENS_PER_MESSAGE = 4
"""OpenAI's per-message overhead: ``<|start|>``, the role, ``<|message|>``, ``<|end|>``."""
REPLY_PRIMING_TOKENS = 3
"""OpenAI's tokens that prime the assistant's reply."""
_ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
"""Where tiktoken fetches an encoding; its cache file is named by this URL's SHA-1."""
_PROVIDER_PREFIXES = ("openai/", "azure/", "text-completion-openai/")


class Encoding(Protocol):
    """What is used of a tiktoken encoding."""

    def encode_ordinary(self, text: str) -> list[int]:
        """The token ids of ``text``, special tokens read as text."""
        ...


class LocalCounts(Protocol):
    """What is used of the local backend."""

    def prompt_tokens(self, name: str, req: ChatRequest) -> int | None:
        """The prompt tokens of ``req`` for the loaded model ``name``; None if unknown."""
        ...


def tiktoken_encoding_name(model: ModelSpec) -> str | None:
    """The tiktoken encoding of ``model``'s upstream name, or None when tiktoken does not know
    it (litellm's rule first: any ``gpt-4o`` name is ``o200k_base``)."""
    import tiktoken

    name = model.upstream_model or model.name
    for prefix in _PROVIDER_PREFIXES:
        name = name.removeprefix(prefix)
    if "gpt-4o" in name:
        return "o200k_base"
    try:
        return tiktoken.encoding_name_for_model(name)
    except KeyError:
        return None


def bundled_tiktoken_dir() -> Path | None:
    """The tiktoken files litellm ships (found without importing litellm), if installed."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    return folder if folder.is_dir() else None


class TokenCounter:
    """Counts a chat prompt's tokens with each model's own tokenizer (see the module docstring).

    ``local`` gives the in-process backend (None when the policy has no local model).
    Encodings are read from ``TIKTOKEN_CACHE_DIR``; when it is unset, it is pointed at
    litellm's bundled copies, as importing litellm does.
    """

    def __init__(
        self,
        local: Callable[[], LocalCounts | None] = lambda: None,
    ) -> None:
        self._local = local
        self._bundled = bundled_tiktoken_dir()
        self._encodings: dict[str, Encoding | None] = {}
        self._lock = threading.Lock()  # worker threads load encodings once

    def encoding(self, name: str) -> Encoding | None:
        """The tiktoken encoding ``name`` from a file on disk; None when no file has it.
        Blocking (a few hundred milliseconds the first time)."""
        with self._lock:
            if name in self._encodings:
                return self._encodings[name]
            enc = self._load(name)
            self._encodings[name] = enc
            return enc

    def _load(self, name: str) -> Encoding | None:
        import tiktoken

        key = hashlib.sha1(_ENCODING_URL.format(name=name).encode()).hexdigest()
        cache_dir = os.environ.get("TIKTOKEN_CACHE_DIR")
        if cache_dir is None and self._bundled is not None:
            # what importing litellm does too: tiktoken reads litellm's bundled copies
            os.environ["TIKTOKEN_CACHE_DIR"] = cache_dir = str(self._bundled)
        if not cache_dir or not (Path(cache_dir) / key).is_file():
            log.info("tokenizer_unknown", encoding=name, reason="no local file")
            return None  # tiktoken would download it
        try:
            encoding: Encoding = tiktoken.get_encoding(name)
        except Exception as exc:  # e.g. an encoding that needs a second file
            log.info("tokenizer_unknown", encoding=name, reason=repr(exc))
            return None
        return encoding

    def count(self, model: ModelSpec, req: ChatRequest) -> int | None:
        """``req``'s prompt tokens for ``model``; None when its tokenizer is unknown.
        Blocking: run it in a worker thread."""
        if model.backend == "local":
            local = self._local()
            return local.prompt_tokens(model.name, req) if local is not None else None
        name = tiktoken_encoding_name(model)
        enc = self.encoding(name) if name is not None else None
        if enc is None:
            return None
        text_tokens = sum(len(enc.encode_ordinary(m.text())) for m in req.messages)
        return text_tokens + TOKENS_PER_MESSAGE * len(req.messages) + REPLY_PRIMING_TOKENS

    def count_many(self, models: Iterable[ModelSpec], req: ChatRequest) -> dict[str, int]:
        """:meth:`count` for each of ``models`` whose tokenizer is known, by model name; one
        pass per tokenizer. Blocking."""
        out: dict[str, int] = {}
        by_encoding: dict[str, int | None] = {}
        for model in models:
            if model.backend == "local":
                n = self.count(model, req)
            else:
                name = tiktoken_encoding_name(model)
                if name is None:
                    continue
                if name not in by_encoding:
                    by_encoding[name] = self.count(model, req)
                n = by_encoding[name]
            if n is not None:
                out[model.name] = n
        return out

    def warm(self, policy: Policy) -> None:
        """Load the encodings of ``policy``'s hosted chat models now (blocking), so that the
        first near-the-limit request does not pay for it."""
        for model in policy.models:
            if model.kind == "chat" and model.backend != "local":
                name = tiktoken_encoding_name(model)
                if name is not None:
                    self.encoding(name)
