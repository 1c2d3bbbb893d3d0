"""A cache of a GGUF model's converted weights, as a plain transformers checkpoint.

transformers loads a GGUF file by dequantising every tensor in Python and converting the
tokenizer from GGUF metadata: for SmolLM2-135M that is ~20 s of CPU at every start. The result
never changes for a given file and dtype, so it is written once to the models directory
(``$ROUTER_MODELS_DIR``, shared with the classifier's int8 encoder) as a checkpoint folder:
``model.safetensors`` (loaded memory-mapped, so worker processes share its pages),
``config.json``, ``generation_config.json`` and the tokenizer's files.

The folder's name holds a digest of the GGUF file's bytes, the dtype and :data:`RECIPE`, so a new
file, another dtype or a new conversion recipe gets a new folder. A folder is complete only when
its ``manifest.json`` (written last) lists every file with its size and the sizes match and the
safetensors header parses; anything else (a crash mid-write, a truncated or overwritten file) is
rebuilt. Builds happen in a temporary folder beside the target and are renamed into place, so a
concurrent reader (another worker) never sees half a cache. Tensor bytes are not re-hashed at
each start (that would cost more than it saves); a tensor corrupted in place with its size
unchanged goes undetected until the folder is deleted (it is a cache: always safe to delete).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

RECIPE = "st-v1"
"""Names the conversion (what :func:`write_checkpoint` writes); change it when that changes."""
MANIFEST = "manifest.json"
WEIGHTS = "model.safetensors"
_CHUNK_BYTES = 1 << 20

Converter = Callable[[], tuple[Any, Any]]
"""Loads the source the slow way: returns ``(model, tokenizer)`` (transformers objects)."""


def file_digest(path: Path) -> str:
    """The first 16 hex digits of the SHA-256 of ``path``'s bytes (~0.1 s per 100 MB)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()[:16]


def source_digest(source: Path, root: Path) -> str:
    """:func:`file_digest` of ``source``, remembered in ``root`` under the file's identity
    (inode, size, modification time in ns) so that a start does not re-read 100 MB: a file
    that is replaced or rewritten gets a new identity and is hashed again."""
    st = source.stat()
    memo = root / f".digest-{source.name}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}"
    try:
        digest = memo.read_text().strip()
        if len(digest) == 16:
            return digest
    except OSError:
        pass
    digest = file_digest(source)
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f"{memo.name}.{os.getpid()}.tmp")
        tmp.write_text(digest)
        tmp.replace(memo)
    except OSError:  # a read-only models directory: hash again next time
        pass
    return digest


def cache_folder(source: Path, dtype_name: str, root: Path) -> Path:
    """Where the converted checkpoint of ``source`` in ``dtype_name`` lives (may not exist)."""
    return root / f"local-{source.stem}-{source_digest(source, root)}-{dtype_name}-{RECIPE}"


def is_complete(folder: Path) -> bool:
    """True when ``folder`` holds a whole cache: the manifest, every file it lists at its
    size, and a readable safetensors header."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        sizes: dict[str, int] = manifest["files"]
        if WEIGHTS not in sizes:
            return False
        for name, size in sizes.items():
            if (folder / name).stat().st_size != size:
                return False
        from safetensors import safe_open

        # framework "numpy", not "pt": "pt" imports torch (~2-4 s), and only the header is read.
        with safe_open(str(folder / WEIGHTS), framework="numpy") as f:
            return bool(list(f.keys()))
    except Exception:
        # A missing or malformed manifest, a missing file, or a header safetensors rejects
        # (its SafetensorError derives from Exception only).
        return False


def write_checkpoint(model: Any, tokenizer: Any, folder: Path) -> None:
    """Write ``model`` and ``tokenizer`` as a transformers checkpoint, then the manifest.

    ``save_pretrained`` refuses a model loaded from GGUF (its config still says "gguf"), so the
    weights go through safetensors directly; tied weights (``lm_head`` = the embeddings) are
    written once and tied again on load.
    """
    from safetensors.torch import save_file

    tied = set(getattr(model, "_tied_weights_keys", None) or ())
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in tied}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the weights are plain tensors now
    config.pop("_name_or_path", None)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({"recipe": RECIPE, "files": files}, indent=2))


def ensure_cached(folder: Path, convert: Converter) -> Path:
    """``folder`` once it holds a complete cache, building it with ``convert`` when it does not.

    Blocking (the build is the slow load plus a write). Raises :class:`OSError` when the models
    directory is not writable, or what ``convert`` raises.
    """
    if is_complete(folder):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    log.info("local_model_cache_build", folder=str(folder))  # once per model file and dtype
    model, tokenizer = convert()
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_checkpoint(model, tokenizer, tmp)
        # mkdtemp makes the folder private; the cache is as readable as the models directory.
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        _replace_folder(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` to ``target``. An incomplete ``target`` is moved aside and deleted first;
    a complete one (another process finished first) is kept and ``new`` is dropped."""
    for _ in range(3):
        try:
            new.rename(target)  # atomic; fails when target is a non-empty folder
            return
        except OSError:
            if is_complete(target):
                return
            stale = target.with_name(f".{target.name}.stale-{os.getpid()}")
            try:
                target.rename(stale)
            except FileNotFoundError:
                continue  # someone else moved it: try again
            shutil.rmtree(stale, ignore_errors=True)
    raise OSError(f"cannot move the local model cache into {target}")
