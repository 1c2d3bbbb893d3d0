"""Fit the head on labelled outcomes, validate it by held-out subject, and write the model dir.

The target is the strong model's gain over the weak one (``strong - weak``, both in [0, 1]),
fitted by ridge regression on the standardised ``[embedding, features]``. The prompt's length
then gets an extra fixed weight (``length_weight`` standard deviations of the fitted score per
standard deviation of log length): length is the one signal that holds across every data set, and
a fit on subject-clustered data tends to spend it on subject identity instead. A Platt scaling
fitted to "strong beats weak" maps the result to a probability.

Validation holds out whole groups (``source``, e.g. an MMLU subject): every reported number is
for prompts of subjects the head never saw. Files with one source (arena) are split by row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.dataset import Outcomes, file_sha256, load_outcomes
from router.classify.encoder import ENCODER_NAME, Encoder
from router.classify.evaluate import evaluate_scores, write_plot
from router.classify.features import FEATURE_NAMES, feature_matrix
from router.classify.head import (
    METADATA_FILE,
    LinearHead,
    fit_platt,
    fit_ridge,
    standardiser,
)

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
STRUCTURE_FEATURES = ("code", "math", "steps")
"""Features that get the ``structure_weight`` prior."""
Progress = Callable[[int, int], None]
"""Called with ``(done, total)`` prompts while encoding."""


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Hyper-parameters of :func:`fit_head` (chosen by held-out-subject validation)."""

    alpha: float = 1000.0
    length_weight: float = 0.5
    structure_weight: float = 0.1
    """Extra weight of each structure feature (code, math, numbered steps), in
    the same units as ``length_weight``: a prior that holds for coding and math prompts the
    knowledge-and-chat training data hardly has."""
    min_group_strong: float = 0.0
    """Groups (subjects) where the strong model's mean outcome is below this are left out of
    fitting (still scored in validation). 0.25 (below chance on four options) drops MMLU
    high-school mathematics, where GPT-4-1106 scores 3 % (an answer-extraction failure); that
    raised math prompts' scores but lowered held-out APGR (0.6215 -> 0.6194), so it is off."""
    min_file_share: float = 0.12
    """Rows of a small file are up-weighted so that each file carries at least this share."""
    folds: int = 5


@dataclass(frozen=True, slots=True)
class Design:
    """Encoded training rows."""

    embeddings: F32
    features: F32
    gain: F64
    weight: F64
    file_index: npt.NDArray[np.int64]
    fit_mask: npt.NDArray[np.bool_]
    """Rows that may be used for fitting (see ``TrainConfig.min_group_strong``)."""


def encode_outcomes(
    encoder: Encoder,
    data: Outcomes,
    cache: Path | None = None,
    progress: Progress | None = None,
    chunk: int = 256,
) -> tuple[F32, npt.NDArray[np.int64]]:
    """Embeddings and untruncated token counts of ``data``'s prompts.

    A ``cache`` (``.npz`` with ``emb``, ``tokens``, ``ids``, ``max_tokens``) is read when it
    holds every id at the encoder's token budget, and written after encoding otherwise.
    """
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            budget = int(z["max_tokens"]) if "max_tokens" in z else -1
            index = {str(i): k for k, i in enumerate(z["ids"])}
            if budget == encoder.max_tokens and all(i in index for i in data.ids):
                rows = np.asarray([index[i] for i in data.ids])
                if progress:
                    progress(len(data), len(data))
                return z["emb"][rows].astype(np.float32), z["tokens"][rows].astype(np.int64)
    embs: list[F32] = []
    toks: list[npt.NDArray[np.int64]] = []
    for start in range(0, len(data), chunk):
        out = encoder.encode(data.prompts[start : start + chunk])
        embs.append(out.embeddings)
        toks.append(out.user_tokens)
        if progress:
            progress(min(start + chunk, len(data)), len(data))
    emb = np.concatenate(embs)
    tokens = np.concatenate(toks)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            emb=emb,  # float32: a re-run from the cache gives the same head
            tokens=tokens,
            ids=np.asarray(data.ids, dtype=np.str_),
            max_tokens=np.asarray(encoder.max_tokens),
        )
    return emb, tokens


def broken_groups(data: Outcomes, min_strong: float) -> dict[str, float]:
    """Groups whose strong-model mean outcome is below ``min_strong``, with that mean."""
    groups = np.asarray(data.groups)
    out: dict[str, float] = {}
    for g in np.unique(groups):
        mean = float(data.strong[groups == g].mean())
        if mean < min_strong:
            out[str(g)] = mean
    return out


def file_weights(file_index: npt.NDArray[np.int64], min_share: float) -> F64:
    """Row weights that give each file at least ``min_share`` of the total weight."""
    n = len(file_index)
    w = np.ones(n)
    for f in np.unique(file_index):
        rows = file_index == f
        factor = max(1.0, min_share * n / rows.sum())
        w[rows] = factor
    return w


def fit_head(
    embeddings: F32, features: F32, gain: F64, weight: F64, config: TrainConfig
) -> LinearHead:
    """Fit the ridge weights, the extra length weight and the Platt scaling."""
    x = np.hstack([embeddings.astype(np.float64), features.astype(np.float64)])
    mean, scale = standardiser(x)
    xs = (x - mean) / scale
    coef, bias = fit_ridge(xs, gain, config.alpha, weight)
    fitted = xs @ coef + bias
    spread = float(fitted.std()) or 1.0
    length_col = embeddings.shape[1] + FEATURE_NAMES.index("log_tokens")
    coef = coef.copy()
    coef[length_col] += config.length_weight * spread
    for name in STRUCTURE_FEATURES:
        coef[embeddings.shape[1] + FEATURE_NAMES.index(name)] += config.structure_weight * spread
    raw = xs @ coef + bias
    a, b = fit_platt(raw, (gain > 0).astype(np.float64))
    return LinearHead(
        mean=mean,
        scale=scale,
        weights=coef,
        bias=bias,
        platt_a=a,
        platt_b=b,
        feature_names=FEATURE_NAMES,
        embedding_dim=int(embeddings.shape[1]),
    )


def group_folds(groups: Sequence[str], folds: int) -> npt.NDArray[np.int64]:
    """Assign whole groups to folds, largest first, each to the currently smallest fold.

    A data set with a single group is split by row instead (round robin over a fixed shuffle).
    """
    names, counts = np.unique(np.asarray(groups), return_counts=True)
    out = np.zeros(len(groups), dtype=np.int64)
    if len(names) < folds:
        perm = np.random.default_rng(0).permutation(len(groups))
        out[perm] = np.arange(len(groups)) % folds
        return out
    sizes = np.zeros(folds)
    fold_of: dict[str, int] = {}
    for i in np.argsort(-counts, kind="stable"):
        f = int(np.argmin(sizes))
        fold_of[str(names[i])] = f
        sizes[f] += counts[i]
    return np.asarray([fold_of[g] for g in groups], dtype=np.int64)


def held_out_scores(
    design: Design, groups: Sequence[str], files: Sequence[int], config: TrainConfig
) -> F64:
    """Out-of-fold raw scores: each row scored by a head that never saw its group.

    Folds are made within each file, so every head trains on some of every file.
    """
    fold = np.zeros(len(groups), dtype=np.int64)
    file_index = np.asarray(files)
    for f in np.unique(file_index):
        rows = np.flatnonzero(file_index == f)
        fold[rows] = group_folds([groups[int(i)] for i in rows], config.folds)
    out = np.zeros(len(groups))
    for k in range(config.folds):
        test = fold == k
        train = ~test & design.fit_mask
        if not test.any() or not train.any():
            continue
        head = fit_head(
            design.embeddings[train],
            design.features[train],
            design.gain[train],
            design.weight[train],
            config,
        )
        out[test] = head.raw(design.embeddings[test], design.features[test])
    return out


def train_model(
    data_paths: Sequence[Path],
    out_dir: Path,
    encoder: Encoder,
    weak_model: str,
    strong_model: str,
    config: TrainConfig | None = None,
    cache: Path | None = None,
    progress: Progress | None = None,
    plots_dir: Path | None = None,
) -> dict[str, object]:
    """Train on ``data_paths``, validate by held-out group, write ``out_dir``; returns metadata.

    ``plots_dir`` receives one ``classifier-heldout-<file>.html`` per data file: quality against
    strong-call share for the held-out scores, beside the baselines.
    """
    cfg = config or TrainConfig()
    parts = [load_outcomes([p], weak_model, strong_model) for p in data_paths]
    data = Outcomes(
        ids=[i for p in parts for i in p.ids],
        groups=[g for p in parts for g in p.groups],
        prompts=[q for p in parts for q in p.prompts],
        weak=np.concatenate([p.weak for p in parts]),
        strong=np.concatenate([p.strong for p in parts]),
        files=[str(p) for p in data_paths],
    )
    file_index = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    emb, tokens = encode_outcomes(encoder, data, cache, progress)
    feats = feature_matrix(data.prompts, tokens)
    excluded = broken_groups(data, cfg.min_group_strong)
    design = Design(
        embeddings=emb,
        features=feats,
        gain=data.strong - data.weak,
        weight=file_weights(file_index, cfg.min_file_share),
        file_index=file_index,
        fit_mask=np.asarray([g not in excluded for g in data.groups]),
    )
    oof = held_out_scores(design, data.groups, list(file_index), cfg)
    fit = design.fit_mask
    validation: dict[str, object] = {}
    for i, path in enumerate(data_paths):
        rows = np.flatnonzero(file_index == i)
        sub = data.subset(rows)
        report = evaluate_scores(sub, oof[rows], tokens[rows])
        validation[path.name] = report.as_dict()
        if plots_dir is not None:
            title = f"{path.name}: held-out quality vs strong share"
            write_plot(plots_dir / f"classifier-heldout-{path.stem}.html", title, report)
    head = fit_head(emb[fit], feats[fit], design.gain[fit], design.weight[fit], cfg)
    head.save(out_dir)
    weights_hash = hashlib.sha256((out_dir / "head.npz").read_bytes()).hexdigest()
    metadata: dict[str, object] = {
        "kind": "linear-ridge",
        "source": f"minilm-ridge@{weights_hash[:12]}",
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "encoder": ENCODER_NAME,
        "encoder_max_tokens": encoder.max_tokens,
        "encoder_context_tokens": encoder.context_tokens,
        "encoder_runtime": encoder.backend.name,
        "embeddings_cache": cache.name if cache is not None else None,
        "weak_model": weak_model,
        "strong_model": strong_model,
        "features": list(FEATURE_NAMES),
        "config": asdict(cfg),
        "excluded_from_fit": {g: f"strong mean {v:.2f}" for g, v in sorted(excluded.items())},
        "data": [
            {"file": p.name, "sha256": file_sha256(p), "rows_used": len(parts[i])}
            for i, p in enumerate(data_paths)
        ],
        "validation": {
            "method": f"{cfg.folds}-fold, whole sources/subjects held out (rows for one-source "
            "files); each head also trains on the other files",
            "metrics": validation,
        },
        "weights_sha256": weights_hash,
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
    return metadata
