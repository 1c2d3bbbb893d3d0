"""Partial fine-tuning of MiniLM's top layers, leave one family out (lab tooling, not served).

Run ``python -m router.lab.finetune --data ../shared/data/router --cache /tmp/lower48.npz``.

The frozen encoder's embedding did not beat prompt length on every held-out family under any
ridge (``docs/routing-lab.md``). This asks whether *adapting* the encoder does, cheaply enough for
2 CPU cores:

1. every prompt goes once through the embeddings and the lower ``split`` layers of the fp32
   all-MiniLM-L6-v2 at the serving token budget; those hidden states are cached (fp16);
2. for each held-out family, a copy of the top layers (``split`` .. 6), mean pooling and a linear
   head on ``[pooled embedding, 11 surface features]`` are trained on the other families' cached
   states only (no backward through the lower layers, no repeated lower forward). A batch holds
   one family's rows and families are drawn uniformly, so every family weighs the same. Losses:
   ``mse`` (the batch's centred prediction against its centred target: a within-family fit, as
   the ridge's "within") or ``rank`` (pairwise logistic within the batch, weighted by the target
   difference). The target is the strong model's gain standardised within its family, optionally
   mixed with the pair-free difficulty (:func:`router.classify.design.target_and_weight`);
3. the held-out family is scored by its fold's model; ``score = z(log tokens) + λ · z(learned)``
   with both z's over the training rows, and λ chosen as the rule does: the worst family's gain
   over length first (:func:`router.classify.lofo.pick`).

``--lr-layers 0`` trains the head alone on the frozen top layers: the same pipeline's frozen
baseline. ``--split 0`` caches only the embedding layer's output and fine-tunes all six layers
(end to end but for the token embeddings). Per-fold held-out scores are saved in ``--out`` so
an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from router.classify.corpus import load_corpus, parse_pair_overrides
from router.classify.design import Design, Learned, corpus_design, target_and_weight
from router.classify.encoder import Encoder
from router.classify.lofo import F64, LAMBDAS, Candidate, family_apgr, pick

if TYPE_CHECKING:
    import torch

F16 = npt.NDArray[np.float16]
I64 = npt.NDArray[np.int64]
Loss = Literal["mse", "rank"]


@dataclass(frozen=True, slots=True)
class LowerStates:
    """Hidden states after the lower layers, padded to the token budget."""

    hidden: F16
    """``[n, max_tokens, dim]``."""
    lengths: I64
    """Encoder tokens of each row (the rest is padding)."""


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[I64, I64]:
    """``(input_ids, attention_mask)`` of ``seqs``, right-padded to the longest."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), width), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
        mask[r, : len(s)] = 1
    return ids, mask


def additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``[b, t]`` 0/1 mask to the ``[b, 1, 1, t]`` additive mask eager attention takes."""
    import torch

    out: torch.Tensor = (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min
    return out


def _layer(layer: Any, hidden: torch.Tensor, ext: torch.Tensor) -> torch.Tensor:
    out = layer(hidden, attention_mask=ext)
    # transformers 5 returns the tensor; older versions a one-element tuple.
    result: torch.Tensor = out[0] if isinstance(out, tuple) else out
    return result


def lower_states(
    model: Any, seqs: Sequence[Sequence[int]], split: int, pad_id: int, batch: int = 64
) -> LowerStates:
    """Run embeddings and layers ``[0, split)`` of a BERT ``model`` (eager attention) over
    ``seqs`` (encoder inputs, see :meth:`Encoder.token_ids`); fp16 states, padded."""
    import torch

    width = max(len(s) for s in seqs)
    dim = int(model.config.hidden_size)
    hidden = np.zeros((len(seqs), width, dim), dtype=np.float16)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # less padding
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            ids, mask = pad_batch([seqs[i] for i in chunk], pad_id)
            m = torch.from_numpy(mask)
            h = model.embeddings(input_ids=torch.from_numpy(ids))
            ext = additive_mask(m, h.dtype)
            for layer in model.encoder.layer[:split]:
                h = _layer(layer, h, ext)
            hidden[chunk, : ids.shape[1]] = h.numpy().astype(np.float16)
    lengths = np.asarray([len(s) for s in seqs], dtype=np.int64)
    return LowerStates(hidden=hidden, lengths=lengths)


def build_top(model: Any, split: int, n_features: int) -> torch.nn.Module:
    """A trainable copy of layers ``[split, L)`` with mean pooling and a linear head."""
    import torch

    class Top(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(copy.deepcopy(list(model.encoder.layer[split:])))
            dim = int(model.config.hidden_size)
            self.dim = dim
            self.head = torch.nn.Linear(dim + n_features, 1)
            torch.nn.init.zeros_(self.head.weight)
            torch.nn.init.zeros_(self.head.bias)

        def forward(
            self, hidden: torch.Tensor, mask: torch.Tensor, feats: torch.Tensor
        ) -> torch.Tensor:
            ext = additive_mask(mask, hidden.dtype)
            for layer in self.layers:
                hidden = _layer(layer, hidden, ext)
            m = mask[..., None].to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            # The served embedding is unit length; times sqrt(dim) each coordinate has about
            # unit scale, like the standardised features beside it.
            pooled = torch.nn.functional.normalize(pooled, dim=1) * self.dim**0.5
            out: torch.Tensor = self.head(torch.cat([pooled, feats], dim=1))[:, 0]
            return out

    return Top()


@dataclass(frozen=True, slots=True)
class FitConfig:
    """One fine-tuning setting."""

    loss: Loss = "mse"
    difficulty_share: float = 0.0
    epochs: float = 2.0
    batch: int = 32
    lr_layers: float = 3e-5
    """0: the top layers stay frozen (the head alone trains)."""
    lr_head: float = 1e-3
    weight_decay: float = 0.01
    per_family: int = 1500
    """Training rows per family at most (MMLU has 10k; families weigh the same anyway)."""
    seed: int = 0

    @property
    def key(self) -> str:
        """A short label, e.g. ``mse/gain/lr3e-05/e2``."""
        share = self.difficulty_share
        target = "diff" if share == 1 else f"gain+{share:g}diff" if share else "gain"
        return f"{self.loss}/{target}/lr{self.lr_layers:g}/e{self.epochs:g}"


def batch_loss(pred: torch.Tensor, y: torch.Tensor, loss: Loss) -> torch.Tensor:
    """Within-batch loss (every batch is one family's rows)."""
    import torch

    if loss == "mse":
        return ((pred - pred.mean()) - (y - y.mean())).pow(2).mean()
    diff_y = y[:, None] - y[None, :]
    diff_s = pred[:, None] - pred[None, :]
    w = diff_y.clamp(min=0.0)  # pairs where row i should rank above row j
    total = w.sum()
    if float(total) == 0.0:
        return pred.sum() * 0.0
    out: torch.Tensor = (w * torch.nn.functional.softplus(-diff_s)).sum() / total
    return out


def _tensors(
    states: LowerStates, feats: F64, rows: I64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    import torch

    width = int(states.lengths[rows].max())
    hidden = torch.from_numpy(states.hidden[rows, :width].astype(np.float32))
    mask = torch.from_numpy(
        (np.arange(width)[None, :] < states.lengths[rows][:, None]).astype(np.float32)
    )
    return hidden, mask, torch.from_numpy(feats[rows].astype(np.float32))


def predict(
    top: torch.nn.Module, states: LowerStates, feats: F64, rows: I64, batch: int = 128
) -> F64:
    """Scores of ``rows`` (batched by length, so padding stays small)."""
    import torch

    order = rows[np.argsort(states.lengths[rows], kind="stable")]
    out = np.zeros(len(states.lengths))
    top.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            chunk = order[start : start + batch]
            out[chunk] = top(*_tensors(states, feats, chunk)).numpy()
    result: F64 = out[rows]
    return result


def train_top(
    model: Any,
    split: int,
    states: LowerStates,
    feats: F64,
    target: F64,
    groups: Sequence[I64],
    cfg: FitConfig,
) -> torch.nn.Module:
    """Fine-tune a :func:`build_top` on the rows of ``groups`` (one array of rows per family)."""
    import torch

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    top = build_top(model, split, feats.shape[1])
    params: list[dict[str, Any]] = [
        {"params": top.get_submodule("head").parameters(), "lr": cfg.lr_head}
    ]
    layers = top.get_submodule("layers")
    if cfg.lr_layers > 0:
        params.append({"params": layers.parameters(), "lr": cfg.lr_layers})
    else:
        layers.requires_grad_(False)
    opt = torch.optim.AdamW(params, weight_decay=cfg.weight_decay)
    steps = max(1, round(cfg.epochs * sum(len(g) for g in groups) / cfg.batch))
    top.train()
    if cfg.lr_layers <= 0:
        layers.eval()  # frozen means frozen: no dropout in the layers either
    for _ in range(steps):
        g = groups[int(rng.integers(len(groups)))]
        rows = rng.choice(g, min(cfg.batch, len(g)), replace=False)
        pred = top(*_tensors(states, feats, rows))
        loss = batch_loss(pred, torch.from_numpy(target[rows].astype(np.float32)), cfg.loss)
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
    return top


def _z_of(values: F64, ref: F64) -> F64:
    sd = float(ref.std())
    out: F64 = (values - float(ref.mean())) / (sd if sd > 1e-12 else 1.0)
    return out


def standardise(x: F64, rows: I64) -> F64:
    """Columns of ``x`` standardised by the mean and std of ``rows``."""
    mean = x[rows].mean(axis=0)
    sd = x[rows].std(axis=0)
    sd[sd < 1e-12] = 1.0
    out: F64 = (x - mean) / sd
    return out


def run_lofo(
    model: Any,
    split: int,
    states: LowerStates,
    design: Design,
    cfg: FitConfig,
    done: dict[str, F64] | None = None,
    save: Any = None,
) -> tuple[F64, F64]:
    """Every family scored by a model fine-tuned on the others: ``(learned, length)``, each
    standardised over its fold's training rows."""
    names = design.names()
    y, _ = target_and_weight(design, Learned(difficulty_share=cfg.difficulty_share), 0.0)
    rng = np.random.default_rng(cfg.seed)
    capped: dict[str, I64] = {}
    for u in names:
        rows = np.flatnonzero(design.units == u)
        capped[u] = np.sort(rng.choice(rows, min(cfg.per_family, len(rows)), replace=False))
    feats_raw = design.x[:, design.embedding_dim :]
    length = design.x[:, design.length_col]
    learned = np.zeros(len(y))
    length_z = np.zeros(len(y))
    done = dict(done or {})
    for u in names:
        train = [capped[v] for v in names if v != u]
        train_rows = np.concatenate(train)
        held = np.flatnonzero(design.units == u)
        # z of the learned score over a sample of the training rows (200 per family).
        ref_rows = np.concatenate([t[:200] for t in train])
        if u in done:
            fold = done[u]
        else:
            t0 = time.monotonic()
            feats = standardise(feats_raw, train_rows)
            top = train_top(model, split, states, feats, y, train, cfg)
            fold = np.concatenate([predict(top, states, feats, held),
                                   predict(top, states, feats, ref_rows)])  # fmt: skip
            done[u] = fold
            if save is not None:
                save(done)
            print(f"  {u}: {time.monotonic() - t0:.0f} s", flush=True)
        learned[held] = _z_of(fold[: len(held)], fold[len(held) :])
        length_z[held] = _z_of(length[held], length[train_rows])
    return learned, length_z


def lofo_table(
    learned: F64, length_z: F64, design: Design, lambdas: Sequence[float] = LAMBDAS
) -> tuple[dict[str, dict[str, float]], Candidate]:
    """Per-family APGR of length, the learned score alone and length + λ · learned, and the
    candidate the rule picks (maximin gain over length, then mean, then smaller λ)."""
    names = design.names()

    def fam(score: F64) -> dict[str, float]:
        return family_apgr(score, design.units, design.weak, design.strong, names)

    base = fam(length_z)
    table = {"prompt length": base, "learned alone": fam(learned)}
    results = {Candidate("ft", lam, 0.0): fam(length_z + lam * learned) for lam in lambdas}
    for c, r in results.items():
        table[f"length + {c.lam:g} learned"] = r
    return table, pick(results, base)


def main(argv: Sequence[str] | None = None) -> int:
    """Cache the lower states (once), run every fold, print the table."""
    import torch
    from transformers import AutoModel

    from router.classify.encoder import default_model_dir
    from router.lab.candidates import format_rows

    p = argparse.ArgumentParser(prog="python -m router.lab.finetune", description=__doc__)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--pair", action="append", default=[], metavar="FILE=WEAK,STRONG")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--split", type=int, default=4, help="layers below stay frozen (of 6)")
    p.add_argument("--cache", type=Path, required=True, help=".npz of the lower states")
    p.add_argument("--out", type=Path, help=".npz of per-fold scores (resumes)")
    p.add_argument("--loss", choices=["mse", "rank"], default="mse")
    p.add_argument("--difficulty-share", type=float, default=0.0)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--lr-layers", type=float, default=3e-5)
    p.add_argument("--lr-head", type=float, default=1e-3)
    p.add_argument("--per-family", type=int, default=1500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = FitConfig(
        loss=args.loss, difficulty_share=args.difficulty_share, epochs=args.epochs,
        lr_layers=args.lr_layers, lr_head=args.lr_head, per_family=args.per_family,
        seed=args.seed,
    )  # fmt: skip
    corpus = load_corpus(args.data, parse_pair_overrides(args.pair))
    encoder = Encoder.load(device="cpu", runtime="torch", max_tokens=args.max_tokens, threads=1)
    seqs, tokens = encoder.token_ids(corpus.outcomes.prompts)
    model = AutoModel.from_pretrained(
        str(default_model_dir()), local_files_only=True, attn_implementation="eager"
    ).eval()
    states = load_or_build(args.cache, model, seqs, args.split, corpus.outcomes.ids)
    emb0 = np.zeros((len(tokens), 0), dtype=np.float32)
    design = corpus_design(corpus, emb0, np.asarray(tokens, dtype=np.int64))
    done: dict[str, F64] = {}
    if args.out is not None and args.out.is_file():
        with np.load(args.out) as z:
            if str(z["config"]) == json.dumps(asdict(cfg)) and int(z["split"]) == args.split:
                done = {k[5:]: z[k] for k in z.files if k.startswith("fold/")}

    def save(d: dict[str, F64]) -> None:
        if args.out is not None:
            payload: dict[str, Any] = {f"fold/{k}": v for k, v in d.items()}
            payload["config"] = json.dumps(asdict(cfg))
            payload["split"] = args.split
            np.savez(args.out, **payload)

    print(f"{cfg.key}, split {args.split}, {args.max_tokens} tokens", flush=True)
    learned, length_z = run_lofo(model, args.split, states, design, cfg, done, save)
    table, chosen = lofo_table(learned, length_z, design)
    print(format_rows(list(table.items())))
    print(f"rule picks λ {chosen.lam:g}")
    return 0


def load_or_build(
    path: Path, model: Any, seqs: Sequence[Sequence[int]], split: int, ids: Sequence[str]
) -> LowerStates:
    """The cached lower states of ``ids`` at ``split``, computed and written if absent."""
    if path.is_file():
        with np.load(path) as z:
            if int(z["split"]) == split and list(z["ids"]) == list(ids):
                return LowerStates(hidden=z["hidden"], lengths=z["lengths"])
    t0 = time.monotonic()
    states = lower_states(model, seqs, split, pad_id=0)
    np.savez(path, hidden=states.hidden, lengths=states.lengths, split=split,
             ids=np.asarray(ids, dtype=np.str_))  # fmt: skip
    print(f"lower states of {len(ids)} prompts: {time.monotonic() - t0:.0f} s", flush=True)
    return states


if __name__ == "__main__":
    raise SystemExit(main())
