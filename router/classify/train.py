"""Train the head on every data file at once, validated leave-one-family-out.

The head's score is ``z(log tokens) + s * Σ z(code, math, steps) + λ * z(learned)``: prompt
length, a small structure prior and a learned ridge direction (:mod:`router.classify.design`),
folded into one :class:`~router.classify.head.LinearHead` (serving is unchanged). λ, s and the
learned part's setting are chosen by leave-one-family-out validation
(:mod:`router.classify.validate`); λ = s = 0 is prompt length itself.

Entry points:

- :func:`train_model`: ``router train``: files in, model directory out (``head.npz`` and
  ``metadata.json`` with files, pairs, weights and the per-family numbers);
- :func:`train_head`: the learning loop's trainer: the shared files plus a deployment's own
  labelled rows (:class:`~router.classify.design.LabelledPrompt`) in, a head and its metadata
  out, nothing written;
- :func:`score_head`: a head's APGR and CPT(50%) on labelled rows, beside prompt length.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.corpus import Corpus, load_corpus
from router.classify.dataset import DEFAULT_STRONG, DEFAULT_WEAK, file_sha256
from router.classify.design import (
    Design,
    LabelledPrompt,
    TrainConfig,
    corpus_design,
    encode_outcomes,
    extra_design,
    join,
)
from router.classify.encoder import ENCODER_NAME, Encoder
from router.classify.features import FEATURE_NAMES, feature_matrix
from router.classify.head import METADATA_FILE, LinearHead
from router.classify.metrics import router_metrics
from router.classify.validate import (
    SCORE_ANCHORS,
    Validation,
    final_head,
    select_on_extra,
    validate,
)

Progress = Callable[[int, int], None]
"""Called with ``(done, total)`` prompts while encoding."""


@dataclass(frozen=True, slots=True)
class TrainedHead:
    """A fitted head and the metadata that goes into ``metadata.json`` beside it."""

    head: LinearHead
    metadata: dict[str, object]
    validation: Validation | None


@dataclass(frozen=True, slots=True)
class HeadScore:
    """A head against prompt length on labelled rows (higher APGR, lower CPT(50%) is better)."""

    rows: int
    apgr: float
    cpt50: float
    length_apgr: float
    length_cpt50: float

    def as_dict(self) -> dict[str, float | int]:
        """Rounded, for JSON."""
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def corpus_metadata(corpus: Corpus) -> list[dict[str, object]]:
    """Per file: name, sha256, rows used, families and the weak/strong pair with its reason."""
    out: list[dict[str, object]] = []
    for k, (path, pair) in enumerate(zip(corpus.paths, corpus.pairs, strict=True)):
        rows = corpus.file_index == k
        out.append({
            "file": path.name,
            "sha256": file_sha256(path),
            "rows_used": int(rows.sum()),
            "families": sorted({str(f) for f in corpus.families[rows]}),
            "weak_model": pair.weak,
            "strong_model": pair.strong,
            "pair_reason": pair.reason,
        })  # fmt: skip
    return out


def train_head(
    corpus: Corpus | None,
    encoder: Encoder,
    extra: Sequence[LabelledPrompt] = (),
    config: TrainConfig | None = None,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> TrainedHead:
    """Fit a head on ``corpus`` (the shared files; see :func:`router.classify.corpus.load_corpus`)
    and on ``extra``, a deployment's own labelled rows (label 1: the strong answer clearly better).

    Without ``extra``, λ and s are chosen leave-one-family-out over the corpus's families. With
    it, the corpus still trains every head but the choice is made by ``config.extra_folds``
    folds over the extra rows (their APGR; the extra rows carry ``config.extra_share`` of the
    row weight); the leave-one-family-out numbers are then reported for that choice. A
    ``config.fixed`` candidate skips the choice. ``cache`` holds the corpus's embeddings.
    Nothing is written; the metadata has no ``weights_sha256`` or ``created_utc`` yet.
    """
    cfg = config or TrainConfig()
    designs: list[Design] = []
    if corpus is not None:
        emb, tokens = encode_outcomes(encoder, corpus.outcomes, cache, progress)
        designs.append(corpus_design(corpus, emb, tokens))
    if extra:
        designs.append(extra_design(encoder, extra))
    if not designs:
        raise ValueError("nothing to train on")
    design = designs[0] if len(designs) == 1 else join(designs[0], designs[1])
    extra_apgr: float | None = None
    if extra:
        chosen, extra_apgr = select_on_extra(design, cfg)
        cfg_fixed = replace(cfg, fixed=chosen, nested=False)
    else:
        cfg_fixed = cfg
    shared_units = [u for u in design.names() if u != "deployment"]
    validation = validate(design, cfg_fixed) if len(shared_units) >= 2 else None
    final = cfg_fixed.fixed or (validation.chosen if validation else None)
    if final is None:
        raise ValueError("one family and no extra rows: nothing to choose the weights by")
    chosen = final
    head, platt_slope = final_head(design, cfg_fixed, chosen)
    meta: dict[str, object] = {
        "kind": "linear-lofo",
        "encoder": ENCODER_NAME,
        "encoder_max_tokens": encoder.max_tokens,
        "encoder_context_tokens": encoder.context_tokens,
        "encoder_runtime": encoder.backend.name,
        "embeddings_cache": cache.name if cache is not None else None,
        "weak_model": DEFAULT_WEAK,
        "strong_model": DEFAULT_STRONG,
        "features": list(FEATURE_NAMES),
        "score": "z(log_tokens) + structure * sum z(code, math, steps) + lam * z(learned ridge)",
        "weights": {
            "learned": chosen.config,
            "lam": chosen.lam,
            "structure": chosen.structure_weight,
            "chosen_by": "extra-rows folds" if extra else "leave-one-family-out",
        },
        "score_scale": {
            "anchors": [{"quantile": q, "score": v} for q, v in SCORE_ANCHORS],
            "note": "sigmoid(a * raw + b) with the training prompts' quantiles (families weighted "
            "equally) mapped to these scores: a rank on a fixed scale, not a probability",
            "platt_slope_default_pair_per_sd": round(platt_slope, 4),
        },
        "data": corpus_metadata(corpus) if corpus is not None else [],
        "extra_rows": len(extra),
        "validation": validation.as_dict() if validation else None,
    }
    if extra_apgr is not None:
        meta["extra_rows_out_of_fold_apgr"] = round(extra_apgr, 4)
    return TrainedHead(head=head, metadata=meta, validation=validation)


def score_head(head: LinearHead, encoder: Encoder, rows: Sequence[LabelledPrompt]) -> HeadScore:
    """APGR and CPT(50%) of ``head`` on ``rows`` (weak outcome 0, strong outcome = label),
    beside routing by prompt length. ``encoder`` must be the one the head was trained with."""
    if not rows:
        raise ValueError("no rows to score")
    enc = encoder.encode([r.prompt for r in rows])
    feats = feature_matrix([r.prompt for r in rows], enc.user_tokens)
    scores = head.raw(enc.embeddings, feats)
    labels = np.clip(np.asarray([r.label for r in rows], dtype=np.float64), 0.0, 1.0)
    return score_arrays(scores, enc.user_tokens, labels)


def score_arrays(
    scores: npt.ArrayLike, user_tokens: npt.ArrayLike, labels: npt.ArrayLike
) -> HeadScore:
    """:class:`HeadScore` from router scores, token counts and labels in [0, 1]."""
    y = np.asarray(labels, dtype=np.float64)
    zero = np.zeros(len(y))
    r = router_metrics(np.asarray(scores, dtype=np.float64), zero, y)
    b = router_metrics(np.asarray(user_tokens, dtype=np.float64), zero, y)
    return HeadScore(len(y), r.apgr, r.cpt50, b.apgr, b.cpt50)


def train_model(
    data_paths: Sequence[Path],
    out_dir: Path,
    encoder: Encoder,
    pairs: Mapping[str, tuple[str, str]] | None = None,
    default_pair: tuple[str, str] = (DEFAULT_WEAK, DEFAULT_STRONG),
    config: TrainConfig | None = None,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Train on ``data_paths`` (files or directories), write ``out_dir``; returns the metadata."""
    corpus = load_corpus(data_paths, pairs, default_pair)
    trained = train_head(corpus, encoder, (), config, cache, progress)
    return write_model(trained, out_dir, default_pair)


def write_model(
    trained: TrainedHead,
    out_dir: Path,
    default_pair: tuple[str, str] = (DEFAULT_WEAK, DEFAULT_STRONG),
) -> dict[str, object]:
    """Write ``head.npz`` and ``metadata.json`` (with the weights' hash) into ``out_dir``."""
    trained.head.save(out_dir)
    weights_hash = hashlib.sha256((out_dir / "head.npz").read_bytes()).hexdigest()
    meta = {
        "kind": trained.metadata.get("kind"),
        "source": f"minilm-lofo@{weights_hash[:12]}",
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **trained.metadata,
        "weak_model": default_pair[0],
        "strong_model": default_pair[1],
        "weights_sha256": weights_hash,
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta
