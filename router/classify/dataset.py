"""Labelled routing data: JSONL rows with each model's outcome on a prompt.

One row: ``{"id", "source", "prompt", "scores": {model: outcome}, "scale": "binary"|"1-10"}``
(the format of ``../shared/data/router``). ``prompt`` may also be an OpenAI ``messages`` list.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router.classify.inputs import PromptText, prompt_from_messages

DEFAULT_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
DEFAULT_STRONG = "gpt-4-1106-preview"


def prompt_of(value: Any) -> PromptText:
    """A row's ``prompt`` (a string, or a list of ``{"role", "content"}`` messages)."""
    if isinstance(value, str):
        return PromptText(user=value)
    if isinstance(value, list):
        pairs: list[tuple[str, str]] = []
        for m in value:
            if not isinstance(m, dict):
                raise ValueError("a messages list must hold objects with role and content")
            content = m.get("content")
            if isinstance(content, list):
                content = "\n".join(
                    str(p.get("text") or "") for p in content if isinstance(p, dict)
                )
            pairs.append((str(m.get("role", "user")), str(content or "")))
        return prompt_from_messages(pairs)
    raise ValueError(f"prompt must be a string or a messages list, got {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Prompts with the weak and strong models' outcomes, rescaled to [0, 1]."""

    ids: list[str]
    groups: list[str]
    """The row's ``source`` with its subject (``mmlu/astronomy``): the unit held out."""
    prompts: list[PromptText]
    weak: npt.NDArray[np.float64]
    strong: npt.NDArray[np.float64]
    files: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: npt.NDArray[np.int64]) -> Outcomes:
        """The rows at ``index``."""
        idx = [int(i) for i in index]
        return Outcomes(
            ids=[self.ids[i] for i in idx],
            groups=[self.groups[i] for i in idx],
            prompts=[self.prompts[i] for i in idx],
            weak=self.weak[index],
            strong=self.strong[index],
            files=self.files,
        )


def rescale_outcome(value: float, scale: str) -> float:
    """Outcomes on a 1-10 judge scale are mapped to [0, 1]; binary ones stay."""
    return (value - 1.0) / 9.0 if scale == "1-10" else value


def read_rows(path: Path) -> Iterable[dict[str, Any]]:
    """Yield the JSON objects of a JSONL file, skipping blank lines."""
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc}") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: each line must be a JSON object")
            yield row


def load_outcomes(
    paths: Sequence[Path], weak_model: str = DEFAULT_WEAK, strong_model: str = DEFAULT_STRONG
) -> Outcomes:
    """Rows of ``paths`` that score both models (others are skipped)."""
    ids: list[str] = []
    groups: list[str] = []
    prompts: list[PromptText] = []
    weak: list[float] = []
    strong: list[float] = []
    for path in paths:
        for row in read_rows(path):
            scores = row.get("scores") or {}
            if weak_model not in scores or strong_model not in scores:
                continue
            scale = str(row.get("scale", "binary"))
            ids.append(str(row.get("id", len(ids))))
            groups.append(str(row.get("source", path.stem)))
            prompts.append(prompt_of(row["prompt"]))
            weak.append(rescale_outcome(float(scores[weak_model]), scale))
            strong.append(rescale_outcome(float(scores[strong_model]), scale))
    if not ids:
        raise ValueError(f"no rows score both {weak_model!r} and {strong_model!r} in {paths}")
    return Outcomes(
        ids=ids,
        groups=groups,
        prompts=prompts,
        weak=np.asarray(weak),
        strong=np.asarray(strong),
        files=[str(p) for p in paths],
    )


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
