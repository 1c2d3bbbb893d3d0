"""Which engine runs a ``local`` model, and loading it (blocking; called from a worker thread).

The numpy engine (:mod:`router.backends.local_numpy`) is picked whenever it can run the model:
a Llama checkpoint in float32 on the CPU, which a GGUF file's converted-weights cache is. It
starts without importing torch or transformers, which is most of a start-up otherwise (~4-6 s
of ``make run`` on a 2-core CPU: ``docs/performance.md``). Anything else (CUDA, bfloat16,
another architecture, ``cache_converted: false``) goes to transformers
(:mod:`router.backends.local_model`), and so does the first start of a GGUF file, whose
conversion is transformers' job; the numpy engine then serves from the cache it wrote.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from router.backends.local_engine import Engine
from router.backends.local_source import ResolvedSource, resolve_source
from router.policy.sections.local_model import LocalModelSettings

log = structlog.get_logger(__name__)


def load_engine(settings: LocalModelSettings) -> Engine:
    """Load the model ``settings`` describes on the engine :func:`numpy_folder` picks."""
    folder, why = numpy_folder(settings)
    if folder is not None:
        from router.backends.local_numpy import NumpyLocalModel

        log.info("local_model_engine", engine="numpy", folder=str(folder))
        return NumpyLocalModel.load(folder, settings)
    if settings.engine == "numpy":
        raise ValueError(f"engine 'numpy' cannot run {settings.source!r}: {why}")
    log.info("local_model_engine", engine="transformers", why=why)
    from router.backends.local_model import LocalModel  # imports torch (seconds)

    return LocalModel.load(settings)


def numpy_folder(settings: LocalModelSettings) -> tuple[Path | None, str]:
    """The checkpoint folder the numpy engine would load, or None and why not.

    May build a GGUF file's converted-weights cache first (with transformers: the first start).
    """
    from router.backends.local_numpy import folder_reason

    if settings.engine == "transformers":
        return None, "engine: transformers"
    if settings.dtype not in ("auto", "float32"):
        return None, f"dtype {settings.dtype} (the numpy engine computes in float32)"
    if settings.device == "cuda":
        return None, "device: cuda"
    if settings.device == "auto" and settings.engine == "auto" and _cuda_available():
        return None, "a CUDA device is present"
    where = resolve_source(settings)
    if where.gguf_file is None:
        folder: Path | None = where.folder
    elif not settings.cache_converted:
        return None, "cache_converted: false (a GGUF file is converted by transformers)"
    else:
        folder = _converted_folder(where)
        if folder is None:
            return None, "the converted-weights cache cannot be written"
    assert folder is not None
    why = folder_reason(folder)
    return (folder, "") if why is None else (None, why)


def _cuda_available() -> bool:
    from router.classify.encoder import cuda_available

    return cuda_available()


def _converted_folder(where: ResolvedSource) -> Path | None:
    """The float32 cache of a GGUF source, built through transformers when it is missing."""
    from router.backends.local_cache import cache_folder, is_complete
    from router.classify.encoder import models_dir

    assert where.gguf_file is not None
    try:
        folder = cache_folder(where.folder / where.gguf_file, "float32", models_dir())
    except OSError as exc:
        log.warning("local_model_cache_unavailable", gguf=where.gguf_file, error=repr(exc))
        return None
    if is_complete(folder):
        return folder
    import torch

    from router.backends.local_model import _cached_checkpoint

    return _cached_checkpoint(where, torch.float32)
