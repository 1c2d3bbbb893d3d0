"""Where a local model's files are: the folder, and the GGUF file in it (torch-free).

Both engines (:mod:`router.backends.local_numpy` and :mod:`router.backends.local_model`) start
here, and so does the choice between them, which must not import torch.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from router.policy.sections.local_model import LocalModelSettings


@dataclass(frozen=True, slots=True)
class ResolvedSource:
    """Where a model's files are: a folder, and the GGUF file's name in it (if any)."""

    folder: Path
    gguf_file: str | None


def resolve_source(settings: LocalModelSettings) -> ResolvedSource:
    """Find the files ``settings.source`` names, without importing any package."""
    src = settings.source
    if src.startswith("package:"):
        name = src.removeprefix("package:")
        spec = importlib.util.find_spec(name)
        locations = list(spec.submodule_search_locations or []) if spec else []
        if not locations:
            raise FileNotFoundError(f"local model source {src!r}: package {name!r} not installed")
        folder = Path(locations[0])
    else:
        path = Path(src).expanduser()
        if path.is_file():
            if path.suffix != ".gguf":
                raise FileNotFoundError(f"local model source {src!r}: a file must be a .gguf")
            return ResolvedSource(path.parent, path.name)
        folder = path
    if not folder.is_dir():
        raise FileNotFoundError(f"local model source {src!r}: no such folder {folder}")
    if settings.gguf_file is not None:
        if not (folder / settings.gguf_file).is_file():
            raise FileNotFoundError(f"local model source {src!r}: no {settings.gguf_file}")
        return ResolvedSource(folder, settings.gguf_file)
    if (folder / "config.json").is_file():
        return ResolvedSource(folder, None)
    ggufs = sorted(p.name for p in folder.glob("*.gguf"))
    if len(ggufs) != 1:
        raise FileNotFoundError(
            f"local model source {src!r}: expected config.json or exactly one .gguf file in "
            f"{folder}, found {ggufs or 'neither'}; set gguf_file"
        )
    return ResolvedSource(folder, ggufs[0])
