"""A Llama decoder's forward pass in numpy, over memory-mapped safetensors weights.

Why it exists: the ``local`` backend's transformers path imports torch and transformers'
modeling code, which is most of ``make run``'s start-up (~4-6 s on a 2-core CPU), while
SmolLM2 is a plain Llama that needs a few dozen matrix products per token. numpy imports in
~0.1 s, and its BLAS (OpenBLAS) decodes a 135M-parameter model about as fast as torch on the CPU.

What it supports (anything else is refused by :func:`supported`, and the caller loads with
transformers instead): ``model_type: llama``; float32 weights in one ``model.safetensors``; the
default rotary embedding (no ``rope_scaling``); no attention or MLP biases; SiLU; grouped-query
attention; tied or separate output embeddings. The arithmetic follows transformers'
``LlamaForCausalLM`` step by step (RMSNorm in float32, rotate-half RoPE computed in float32,
scaled dot-product attention with a causal mask, SwiGLU), so greedy decoding gives the same
tokens up to float rounding (checked against transformers in the tests).

Weights stay file-backed pages of one read-only mapping: worker processes that load the same
file share them, and nothing is copied at load.
"""

from __future__ import annotations

import json
import math
import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

WEIGHTS = "model.safetensors"
PREFILL_CHUNK = 256
"""Prompt tokens per forward pass (bounds the attention scores' memory)."""


@dataclass(frozen=True, slots=True)
class LlamaConfig:
    """The shape of a Llama model, read from its ``config.json``."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_positions: int
    tie_word_embeddings: bool

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LlamaConfig:
        """Read transformers' ``config.json`` keys (raises ``KeyError`` when one is missing)."""
        heads = int(raw["num_attention_heads"])
        hidden = int(raw["hidden_size"])
        rope = raw.get("rope_parameters") or {}
        theta = rope.get("rope_theta", raw.get("rope_theta", 10000.0))
        return cls(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(raw["intermediate_size"]),
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=heads,
            num_kv_heads=int(raw.get("num_key_value_heads") or heads),
            head_dim=int(raw.get("head_dim") or hidden // heads),
            rms_norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            max_positions=int(raw.get("max_position_embeddings", 2048)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
        )


def unsupported_reason(config: dict[str, Any]) -> str | None:
    """Why this model's ``config.json`` is outside what :class:`LlamaModel` computes; None when
    it is inside."""
    if config.get("model_type") != "llama":
        return f"model_type {config.get('model_type')!r} is not llama"
    rope = config.get("rope_parameters") or {}
    rope_type = rope.get("rope_type", "default")
    if rope_type != "default" or config.get("rope_scaling"):
        return f"rope type {rope_type!r} / rope_scaling is not the default rotary embedding"
    if config.get("attention_bias") or config.get("mlp_bias"):
        return "attention or MLP biases"
    if config.get("hidden_act", "silu") != "silu":
        return f"hidden_act {config.get('hidden_act')!r} is not silu"
    if int(config.get("pretraining_tp", 1)) != 1:
        return "pretraining_tp != 1"
    return None


def read_safetensors(path: Path) -> dict[str, F32]:
    """Every tensor of a safetensors file as a read-only float32 view of one file mapping.

    Raises ``ValueError`` for a tensor that is not float32 (this path computes in float32 and
    does not copy weights), or a malformed header.
    """
    with path.open("rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # outlives the descriptor
    if len(mapped) < 8:
        raise ValueError(f"{path}: not a safetensors file")
    header_len = int.from_bytes(mapped[:8], "little")
    header: dict[str, Any] = json.loads(mapped[8 : 8 + header_len])
    base = 8 + header_len
    tensors: dict[str, F32] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} is {entry['dtype']}, not F32")
        begin, end = entry["data_offsets"]
        shape = tuple(int(n) for n in entry["shape"])
        count = math.prod(shape)
        if end - begin != 4 * count or base + end > len(mapped):
            raise ValueError(f"{path}: tensor {name} has a bad size or offset")
        flat = np.frombuffer(mapped, dtype=np.float32, count=count, offset=base + begin)
        tensors[name] = flat.reshape(shape)
    return tensors


@dataclass(slots=True)
class _Layer:
    input_norm: F32
    q: F32
    k: F32
    v: F32
    o: F32
    post_norm: F32
    gate: F32
    up: F32
    down: F32


class KVCache:
    """Keys and values of every position seen so far, for one sequence.

    Allocated once for ``capacity`` positions (``np.empty``: pages are only backed when
    written, so a large capacity costs memory only as it fills).
    """

    def __init__(self, config: LlamaConfig, capacity: int) -> None:
        shape = (config.num_layers, config.num_kv_heads, capacity, config.head_dim)
        self.keys: F32 = np.empty(shape, dtype=np.float32)
        self.values: F32 = np.empty(shape, dtype=np.float32)
        self.length = 0
        """Positions stored (the next token's position)."""

    @property
    def capacity(self) -> int:
        """The most positions this cache holds."""
        return int(self.keys.shape[2])


class LlamaModel:
    """A Llama causal LM: :meth:`forward` feeds tokens and returns the last position's logits."""

    def __init__(self, config: LlamaConfig, weights: dict[str, F32]) -> None:
        self.config = config
        w = weights
        self._embed = w["model.embed_tokens.weight"]
        head = "model.embed_tokens.weight" if config.tie_word_embeddings else "lm_head.weight"
        self._lm_head = w[head]
        self._norm = w["model.norm.weight"]
        self._layers = [
            _Layer(
                input_norm=w[f"model.layers.{i}.input_layernorm.weight"],
                q=w[f"model.layers.{i}.self_attn.q_proj.weight"].T,
                k=w[f"model.layers.{i}.self_attn.k_proj.weight"].T,
                v=w[f"model.layers.{i}.self_attn.v_proj.weight"].T,
                o=w[f"model.layers.{i}.self_attn.o_proj.weight"].T,
                post_norm=w[f"model.layers.{i}.post_attention_layernorm.weight"],
                gate=w[f"model.layers.{i}.mlp.gate_proj.weight"].T,
                up=w[f"model.layers.{i}.mlp.up_proj.weight"].T,
                down=w[f"model.layers.{i}.mlp.down_proj.weight"].T,
            )
            for i in range(config.num_layers)
        ]  # ``.T`` views: BLAS reads the [out, in] matrices transposed, nothing is copied
        d = config.head_dim
        exponents = np.arange(0, d, 2, dtype=np.int64).astype(np.float32) / np.float32(d)
        self._inv_freq: F32 = (1.0 / (np.float32(config.rope_theta) ** exponents)).astype(
            np.float32
        )

    @classmethod
    def load(cls, folder: Path) -> LlamaModel:
        """Map ``folder/model.safetensors`` and read ``folder/config.json``."""
        config = LlamaConfig.from_dict(json.loads((folder / "config.json").read_text()))
        return cls(config, read_safetensors(folder / WEIGHTS))

    def new_cache(self, capacity: int) -> KVCache:
        """An empty cache for up to ``capacity`` positions (prompt plus generated tokens)."""
        return KVCache(self.config, capacity)

    def forward(self, ids: list[int], cache: KVCache, chunk: int = PREFILL_CHUNK) -> F32:
        """Feed ``ids`` after the positions already in ``cache``; return the logits of the
        last one (float32, ``[vocab_size]``). Raises ``ValueError`` past the cache's capacity.

        A long prompt goes through in pieces of ``chunk`` tokens: the attention scores of one
        piece are ``heads × chunk × positions`` floats (75 MB for SmolLM2 at 8k positions),
        where the whole prompt at once would need gigabytes.
        """
        if cache.length + len(ids) > cache.capacity:
            raise ValueError(
                f"{cache.length + len(ids)} positions exceed the KV cache's {cache.capacity}"
            )
        if not ids:
            raise ValueError("no tokens to feed")
        pieces = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
        for piece in pieces[:-1]:
            self._forward(piece, cache)
        return self._forward(pieces[-1], cache)

    def _forward(self, ids: list[int], cache: KVCache) -> F32:
        c = self.config
        start, n = cache.length, len(ids)
        end = start + n
        x: F32 = self._embed[np.asarray(ids, dtype=np.int64)]  # [n, hidden], a copy
        cos, sin = self._rope(np.arange(start, end))
        groups = c.num_heads // c.num_kv_heads
        scale = np.float32(1.0 / math.sqrt(c.head_dim))
        # Prompt positions may not see later ones; a single new token sees everything.
        mask = None
        if n > 1:
            allowed = np.arange(end)[None, :] <= np.arange(start, end)[:, None]  # [n, end]
            mask = np.where(allowed, np.float32(0.0), np.float32(-np.inf)).astype(np.float32)
        for i, layer in enumerate(self._layers):
            h = self._rms_norm(x, layer.input_norm)
            q = _heads(h @ layer.q, c.num_heads, c.head_dim)  # [heads, n, d]
            k = _heads(h @ layer.k, c.num_kv_heads, c.head_dim)
            v = _heads(h @ layer.v, c.num_kv_heads, c.head_dim)
            q = q * cos + _rotate_half(q) * sin
            k = k * cos + _rotate_half(k) * sin
            cache.keys[i, :, start:end] = k
            cache.values[i, :, start:end] = v
            keys = cache.keys[i, :, :end]  # [kv_heads, end, d]
            values = cache.values[i, :, :end]
            # Query head h reads key/value head h // groups (transformers' repeat_kv order).
            qg = q.reshape(c.num_kv_heads, groups * n, c.head_dim)
            scores = (qg @ keys.transpose(0, 2, 1)) * scale  # [kv_heads, groups * n, end]
            if mask is not None:
                scores = (scores.reshape(c.num_kv_heads, groups, n, end) + mask).reshape(
                    scores.shape
                )
            probs = _softmax(scores)
            attn = (probs @ values).reshape(c.num_heads, n, c.head_dim).transpose(1, 0, 2)
            x = cast(F32, x + attn.reshape(n, c.num_heads * c.head_dim) @ layer.o)
            h = self._rms_norm(x, layer.post_norm)
            x = cast(F32, x + (_silu(h @ layer.gate) * (h @ layer.up)) @ layer.down)
        cache.length = end
        last = self._rms_norm(x[-1:], self._norm)[0]
        logits: F32 = self._lm_head @ last
        return logits

    def _rms_norm(self, x: F32, weight: F32) -> F32:
        variance = np.mean(x * x, axis=-1, keepdims=True)
        out: F32 = weight * (x / np.sqrt(variance + np.float32(self.config.rms_norm_eps)))
        return out

    def _rope(self, positions: npt.NDArray[np.int64]) -> tuple[F32, F32]:
        """cos and sin of each position's angles, ``[n, head_dim]`` (both halves repeated)."""
        freqs = positions.astype(np.float32)[:, None] * self._inv_freq[None, :]
        emb = np.concatenate([freqs, freqs], axis=-1)
        return np.cos(emb).astype(np.float32), np.sin(emb).astype(np.float32)


def _heads(x: F32, heads: int, head_dim: int) -> F32:
    """``[n, heads * head_dim]`` → ``[heads, n, head_dim]``."""
    out: F32 = x.reshape(x.shape[0], heads, head_dim).transpose(1, 0, 2)
    return out


def _rotate_half(x: F32) -> F32:
    half = x.shape[-1] // 2
    out: F32 = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return out


def _softmax(x: F32) -> F32:
    shifted = np.exp(x - x.max(axis=-1, keepdims=True))
    out: F32 = shifted / shifted.sum(axis=-1, keepdims=True)
    return out


def _silu(x: F32) -> F32:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -88: x / inf is -0
        out = cast(F32, x / (np.float32(1.0) + np.exp(-x)))
    return out
