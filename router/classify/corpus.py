"""Training data from many files: a weak/strong pair per file, a family per row, a difficulty.

``router train --data`` takes every file of ``../shared/data/router/`` at once. Each file names
its own models, so each gets a weak/strong pair (:func:`choose_pair`):

1. a ``--pair FILE=WEAK,STRONG`` override;
2. the file's documented default (:data:`FILE_PAIRS`);
3. the default pair (``--weak-model`` / ``--strong-model``) when the file scores both;
4. otherwise an error that asks for ``--pair``.

Every row also gets a **family** (:func:`family_of`): the unit that leave-one-family-out
validation holds out (knowledge, chat, instruction, math, code-reasoning, and routerbench split
into code-writing, science and commonsense by its sources). A file without a known family is
its own family. Rows of files that score three or more models get a pair-free **difficulty**:
the mean share of the file's models that miss the prompt (``1 - mean outcome``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.dataset import (
    DEFAULT_STRONG,
    DEFAULT_WEAK,
    Outcomes,
    prompt_of,
    read_rows,
    rescale_outcome,
)
from router.classify.inputs import PromptText

FILE_PAIRS: dict[str, tuple[str, str]] = {
    "mmlu_mixtral_gpt4": (DEFAULT_WEAK, DEFAULT_STRONG),
    "arena_bench_v1": (DEFAULT_WEAK, DEFAULT_STRONG),
    # The product's pair under AlpacaEval's names: the reference answer is gpt-4-1106's (its
    # outcome is the constant 0.5), Mixtral's is the "concise" run.
    "alpaca_eval": ("Mixtral-8x7B-Instruct-v0.1_concise", "gpt4_1106_preview"),
    # No Mixtral or gpt-4-1106 here: a local-class model (Llama-3.1-8B, 22 % on MATH level 5,
    # Mixtral's class) against the GPT-4 Turbo of the same family as gpt-4-1106.
    "zeroeval_math_l5": ("Meta-Llama-3.1-8B-Instruct", "gpt-4-turbo-2024-04-09"),
    "zeroeval_crux": ("Mixtral-8x7B-Instruct-v0.1", "gpt-4-turbo-2024-04-09"),
    "routerbench": ("mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"),
}
"""Default weak/strong pair per shared data file (by file stem): the product's default pair
(Mixtral-8x7B-Instruct against gpt-4-1106) wherever the file has it, else the closest models."""

FAMILIES: dict[str, str] = {
    "mmlu_mixtral_gpt4": "knowledge",
    "arena_bench_v1": "chat",
    "alpaca_eval": "instruction",
    "zeroeval_math_l5": "math",
    "zeroeval_crux": "code-reasoning",
    "routerbench/mbpp": "code-writing",
    "routerbench/arc-challenge": "science",
    "routerbench/winogrande": "commonsense",
}
"""Family of a file stem, or of a row ``source`` (checked first, for mixed files)."""

MIN_MODELS_FOR_DIFFICULTY = 3


def family_of(file_stem: str, source: str) -> str:
    """The leave-one-family-out unit of a row: by its ``source``, its file, or the file stem."""
    return FAMILIES.get(source) or FAMILIES.get(file_stem) or file_stem


def expand_data_paths(paths: Sequence[Path]) -> list[Path]:
    """Files named, with every ``*.jsonl`` of a named directory (sorted); order kept."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.glob("*.jsonl") if q.is_file()))
        else:
            out.append(p)
    return list(dict.fromkeys(out))


def parse_pair_overrides(specs: Sequence[str]) -> dict[str, tuple[str, str]]:
    """``["FILE=WEAK,STRONG", ...]`` (FILE: a name or stem) as ``{stem: (weak, strong)}``."""
    out: dict[str, tuple[str, str]] = {}
    for spec in specs:
        name, sep, models = spec.partition("=")
        weak, comma, strong = models.partition(",")
        if not sep or not comma or not name or not weak or not strong:
            raise ValueError(f"--pair {spec!r}: expected FILE=WEAK,STRONG")
        out[Path(name).stem if name.endswith(".jsonl") else name] = (weak, strong)
    return out


@dataclass(frozen=True, slots=True)
class PairChoice:
    """Which two models label one file, and why."""

    file: str
    weak: str
    strong: str
    reason: str
    """``override``, ``file default`` or ``default pair``."""


def choose_pair(
    path: Path,
    models: set[str],
    overrides: Mapping[str, tuple[str, str]],
    default: tuple[str, str] = (DEFAULT_WEAK, DEFAULT_STRONG),
) -> PairChoice:
    """The pair for ``path`` given the ``models`` its rows score (see the module docstring)."""
    stem = path.stem
    for pair, reason in (
        (overrides.get(stem), "override"),
        (FILE_PAIRS.get(stem), "file default"),
        (default, "default pair"),
    ):
        if pair is not None and set(pair) <= models:
            return PairChoice(path.name, pair[0], pair[1], reason)
        if pair is not None and reason == "override":
            missing = sorted(set(pair) - models)
            raise ValueError(f"{path.name}: --pair names models it does not score: {missing}")
    shown = ", ".join(sorted(models)[:8])
    raise ValueError(
        f"{path.name}: no default weak/strong pair; pass --pair {stem}=WEAK,STRONG "
        f"(models include: {shown})"
    )


@dataclass(frozen=True, slots=True)
class Corpus:
    """Rows of several files, each labelled by its file's pair."""

    outcomes: Outcomes
    families: npt.NDArray[np.str_]
    difficulty: npt.NDArray[np.float64]
    """Share of the file's models that miss the prompt; NaN for files with under 3 models."""
    file_index: npt.NDArray[np.int64]
    paths: list[Path]
    pairs: list[PairChoice]
    default_pair: tuple[str, str] = (DEFAULT_WEAK, DEFAULT_STRONG)

    def __len__(self) -> int:
        return len(self.outcomes)

    def family_names(self) -> list[str]:
        """Families in order of first appearance."""
        return list(dict.fromkeys(str(f) for f in self.families))


def load_corpus(
    paths: Sequence[Path],
    overrides: Mapping[str, tuple[str, str]] | None = None,
    default: tuple[str, str] = (DEFAULT_WEAK, DEFAULT_STRONG),
) -> Corpus:
    """Read ``paths`` (directories expanded); rows that lack their file's pair are skipped."""
    files = expand_data_paths(paths)
    if not files:
        raise ValueError("no data files")
    ids: list[str] = []
    groups: list[str] = []
    prompts: list[PromptText] = []
    weak: list[float] = []
    strong: list[float] = []
    fams: list[str] = []
    diff: list[float] = []
    file_index: list[int] = []
    pairs: list[PairChoice] = []
    for k, path in enumerate(files):
        rows = list(read_rows(path))
        models = {m for r in rows for m in (r.get("scores") or {})}
        pair = choose_pair(path, models, overrides or {}, default)
        pairs.append(pair)
        many = len(models) >= MIN_MODELS_FOR_DIFFICULTY
        for row in rows:
            scores = row.get("scores") or {}
            if pair.weak not in scores or pair.strong not in scores:
                continue
            scale = str(row.get("scale", "binary"))
            values = [rescale_outcome(float(v), scale) for v in scores.values()]
            source = str(row.get("source", path.stem))
            ids.append(f"{path.stem}::{row.get('id', len(ids))}")
            groups.append(source)
            prompts.append(prompt_of(row["prompt"]))
            weak.append(rescale_outcome(float(scores[pair.weak]), scale))
            strong.append(rescale_outcome(float(scores[pair.strong]), scale))
            fams.append(family_of(path.stem, source))
            diff.append(1.0 - float(np.mean(values)) if many else float("nan"))
            file_index.append(k)
    if not ids:
        raise ValueError("no row scores its file's weak/strong pair")
    outcomes = Outcomes(
        ids=ids,
        groups=groups,
        prompts=prompts,
        weak=np.asarray(weak),
        strong=np.asarray(strong),
        files=[str(p) for p in files],
    )
    return Corpus(
        outcomes=outcomes,
        families=np.asarray(fams, dtype=np.str_),
        difficulty=np.asarray(diff),
        file_index=np.asarray(file_index, dtype=np.int64),
        paths=files,
        pairs=pairs,
        default_pair=default,
    )


def labelled_prompts(path: Path, weak: str, strong: str) -> list[tuple[PromptText, float]]:
    """``(prompt, strong - weak outcome clipped to [0, 1])`` of every row of ``path`` that scores
    both models: a deployment's labelled rows (e.g. ``router train --from-ledger`` feedback)."""
    out: list[tuple[PromptText, float]] = []
    for row in read_rows(path):
        scores = row.get("scores") or {}
        if weak in scores and strong in scores:
            scale = str(row.get("scale", "binary"))
            gain = rescale_outcome(float(scores[strong]), scale) - rescale_outcome(
                float(scores[weak]), scale
            )
            out.append((prompt_of(row["prompt"]), min(1.0, max(0.0, gain))))
    return out
