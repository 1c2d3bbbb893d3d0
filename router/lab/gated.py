"""A type-gated head, leave one family out, with the weight choice nested (lab tooling).

Each prompt gets a type from its format alone (:func:`router.lab.gate.prompt_type`). Within
type ``t`` the score is ``b_t * z(log tokens) + w_t * z_t(component_t)``: the length prior with a
per-type sign or weight, plus one component (a cheap feature, the option spread of a
multiple-choice prompt, or a learned ridge direction fitted on the training families), each
standardised over the training rows (the component within its type). ``b = 1, w = 0`` is prompt
length itself.

**Choosing the weights** (:func:`choose`): for each type, the candidate whose worst training
family (among those with at least :data:`MIN_SHARE` of their rows of that type) gains most APGR
over length, each such family scored by components fitted without it. A type with no such
family keeps length (the global choice on these data). **Reported numbers** (:func:`run`):

- ``held out``: family F scored with weights chosen on the other seven (components fitted
  without F, and without F and the family being scored inside the choice): the choice never
  saw F;
- ``in-sample choice``: weights chosen on all eight families (F's own held-out scores
  included), then scored on F: selection-biased, for comparison only;
- ``nested gate``: also the gate itself (one type, three types or four) chosen without F,
  by the same maximin over the other seven families' held-out results.

Run ``python -m router.lab.gated --data ../shared/data/router --embeddings-cache E.npz``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from router.classify.corpus import load_corpus, parse_pair_overrides
from router.classify.design import Design, Learned, corpus_design, encode_outcomes, stats_by_unit
from router.classify.design import columns as learned_columns
from router.classify.encoder import Encoder
from router.classify.features import FEATURE_NAMES
from router.classify.lofo import F64, fit_direction
from router.classify.metrics import apgr, pgr_curve
from router.lab.gate import option_spread, prompt_type, stem_share

MIN_SHARE = 0.2
FIXED = "length only"
"""A group that always keeps prompt length (no weights are chosen for it)."""
"""A family informs a type's choice when at least this share of its rows is of that type."""
GATES: dict[str, dict[str, str]] = {
    "one type": {"choice": "all", "code": "all", "math": "all", "open": "all"},
    "three types": {"choice": "choice", "code": "code", "math": "other", "open": "other"},
    "four types": {"choice": "choice", "code": "code", "math": "math", "open": "open"},
    "three types, choice at length": {
        "choice": FIXED,
        "code": "code",
        "math": "other",
        "open": "other",
    },
    "four types, choice at length": {
        "choice": FIXED,
        "code": "code",
        "math": "math",
        "open": "open",
    },
}
"""Each gate maps :func:`prompt_type` to the group that shares one set of weights. The
"choice at length" gates keep multiple-choice prompts on length alone: the previous session's
runs found the learned signals hurting the multiple-choice families (docs/routing-lab.md)."""
STATIC = ("questions", "math", "code", "steps", "constraints", "digit_share", "log_chars")
LEARNED = {
    "ridge features": Learned(0.0, False, 1e4, True),
    "ridge embedding+features": Learned(0.0, True, 1e4, True),
}


@dataclass(frozen=True, slots=True)
class Pick:
    """One type's weights: ``base * z(length) + weight * z(component)``."""

    base: float
    component: str
    weight: float
    length: str = "length"
    """The length column: ``length`` (log tokens) or ``stem length`` (without the options)."""

    def label(self) -> str:
        """E.g. ``1·len + 0.5·questions``."""
        name = "len" if self.length == "length" else "stem"
        if not self.weight:
            return f"{self.base:g}·{name}"
        return f"{self.base:g}·{name} {self.weight:+g}·{self.component}"


LENGTH = Pick(1.0, "-", 0.0)
WEIGHTS = (-2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0)
LEARNED_WEIGHTS = (0.1, 0.25, 0.5, 1.0)


PRIORS = ("learned", "structure", "questions", "stem")
"""What ``--priors`` may name: the learned directions, the structure sum and the question-mark
count (each added to length at a positive weight), and the stem length as the length column."""


def candidates(components: Sequence[str], priors: Sequence[str] = ()) -> list[Pick]:
    """Without ``priors`` (the wide set): length, minus length, every component alone (either
    sign) and added to length at either sign. With ``priors`` (a subset of :data:`PRIORS`):
    only length plus a positive weight of each named prior, with the stem length as an
    alternative length column if ``stem`` is named."""
    if priors:
        keep = [
            k for k in components
            if (k in LEARNED and "learned" in priors) or (k in priors and k != "stem")
        ]  # fmt: skip
        bases = ("length", "stem length") if "stem" in priors else ("length",)
        return [
            Pick(1.0, k, w, base)
            for base in bases
            for k, w in [("-", 0.0), *((k, w) for k in keep for w in LEARNED_WEIGHTS)]
        ]
    out = [LENGTH, Pick(-1.0, "-", 0.0)]
    for k in components:
        out += [Pick(0.0, k, 1.0), Pick(0.0, k, -1.0)]
        out += [Pick(1.0, k, w) for w in WEIGHTS]
    return out


class Lab:
    """The design, the types and the components, with fits cached by excluded families."""

    def __init__(
        self,
        design: Design,
        types: npt.NDArray[np.str_],
        spread: F64,
        stem: F64,
        priors: Sequence[str] = (),
    ) -> None:
        """``types`` per row from :func:`prompt_type`; ``spread`` from :func:`option_spread`;
        ``stem``: per row, the share of the user turn before the options (1 when not
        multiple choice); ``priors``: the candidate set (:func:`candidates`)."""
        self.d = design
        self.priors = tuple(priors)
        self.types = types
        self.names = design.names()
        self.rows = {f: design.units == f for f in self.names}
        self.length = design.x[:, design.length_col]
        self.stem = np.log1p(np.expm1(self.length) * stem)
        static = {n: design.x[:, design.embedding_dim + FEATURE_NAMES.index(n)] for n in STATIC}
        static["-option spread"] = spread
        static["structure"] = sum(
            (design.x[:, c] - design.x[:, c].mean()) / (design.x[:, c].std() or 1.0)
            for c in design.struct_cols
        )
        self.static = static
        self.stats = {k: stats_by_unit(design, lc, 0.0) for k, lc in LEARNED.items()}
        self.cache: dict[frozenset[str], dict[str, F64]] = {}
        self.moments: dict[tuple[str, frozenset[str], tuple[str, ...]], tuple[float, float]] = {}
        self.base = {f: self.apgr(self.length, f) for f in self.names}

    def apgr(self, score: F64, family: str) -> float:
        """APGR of ``score`` (all rows) on ``family``'s rows."""
        r = self.rows[family]
        return apgr(pgr_curve(score[r], self.d.weak[r], self.d.strong[r]))

    def components(self, excluded: frozenset[str]) -> dict[str, F64]:
        """Every component's raw value per row, learned ones fitted without ``excluded``."""
        if excluded not in self.cache:
            out = dict(self.static)
            for k, lc in LEARNED.items():
                train = [s for u, s in self.stats[k].items() if u not in excluded]
                dr = fit_direction(train, lc.alpha, learned_columns(self.d, lc))
                out[k] = ((self.d.x - dr.mean) / dr.scale) @ dr.learned
            self.cache[excluded] = out
        return self.cache[excluded]

    def _moments(
        self, c: str, train: frozenset[str], types: tuple[str, ...]
    ) -> tuple[float, float]:
        key = (c, train, types)
        if key not in self.moments:
            comps = self.components(frozenset(self.names) - train)
            v = {"length": self.length, "stem length": self.stem}.get(c)
            v = comps[c] if v is None else v
            tr = np.isin(self.d.units, list(train))
            if (tr & np.isin(self.types, types)).any():  # else: over every type's rows
                tr &= np.isin(self.types, types)
            self.moments[key] = (float(v[tr].mean()), float(v[tr].std()) or 1.0)
        return self.moments[key]

    def score(
        self, picks: dict[str, Pick], gate: dict[str, str], train: Sequence[str], held: str
    ) -> F64:
        """Scores of ``held``'s rows under ``picks`` per group, standardised over the rows of
        ``train``, components fitted without the families outside ``train``."""
        tset = frozenset(train)
        comps = self.components(frozenset(self.names) - tset)
        rows = self.rows[held]
        types = self.types[rows]
        lm, ls = self._moments("length", tset, tuple(gate))
        out: F64 = (self.length[rows] - lm) / ls
        for group in dict.fromkeys(gate.values()):
            pick = picks.get(group, LENGTH)
            if pick == LENGTH:
                continue
            members = tuple(t for t, g in gate.items() if g == group)
            r = np.isin(types, members)
            if not r.any():
                continue
            if pick.length == "stem length":
                sm, ss = self._moments("stem length", tset, tuple(gate))
                out[r] = (self.stem[rows][r] - sm) / ss
            out[r] *= pick.base
            if pick.weight:
                m, sd = self._moments(pick.component, tset, members)
                out[r] += pick.weight * (comps[pick.component][rows][r] - m) / sd
        return out

    def apgr_rows(self, score: F64, family: str) -> float:
        """APGR of ``score`` (``family``'s rows only) on ``family``."""
        r = self.rows[family]
        return apgr(pgr_curve(score, self.d.weak[r], self.d.strong[r]))

    def share(self, family: str, gate: dict[str, str], group: str) -> float:
        """Share of ``family``'s rows that ``gate`` puts in ``group``."""
        in_group = np.isin(self.types, [t for t, g in gate.items() if g == group])
        return float(in_group[self.rows[family]].mean())


def _key(gains: Sequence[float], pick: Pick) -> tuple[float, float, float]:
    return (
        round(min(gains), 4),
        round(float(np.mean(gains)), 4),
        -(abs(pick.weight) + abs(1.0 - pick.base) + (pick.length != "length")),
    )


def choose(lab: Lab, gate: dict[str, str], train: Sequence[str]) -> dict[str, Pick]:
    """Per group, the maximin candidate over ``train``'s families of that group, each scored
    by components fitted without it (and without every family outside ``train``)."""
    comps = [*STATIC, "-option spread", "structure", *LEARNED]
    picks: dict[str, Pick] = {}
    for group in dict.fromkeys(gate.values()):
        fams = [f for f in train if lab.share(f, gate, group) >= MIN_SHARE]
        if not fams or group == FIXED:
            picks[group] = LENGTH
            continue
        gains: dict[Pick, list[float]] = {}
        for f in fams:
            inner = [u for u in train if u != f]
            for c in candidates(comps, lab.priors):
                s = lab.score({group: c}, gate, inner, f)
                gains.setdefault(c, []).append(lab.apgr_rows(s, f) - lab.base[f])
        picks[group] = max(gains, key=lambda c: _key(gains[c], c))
    return picks


@dataclass(frozen=True, slots=True)
class GateResult:
    """Per family: held-out APGR (weights chosen without it) and the in-sample choice's."""

    held_out: dict[str, float]
    in_sample: dict[str, float]
    picks_all: dict[str, Pick]
    picks_without: dict[str, dict[str, Pick]]


def evaluate_gate(lab: Lab, gate: dict[str, str], train: Sequence[str]) -> GateResult:
    """Each family of ``train`` scored with weights chosen on the others of ``train``."""
    held: dict[str, float] = {}
    ins: dict[str, float] = {}
    without: dict[str, dict[str, Pick]] = {}
    everything = choose(lab, gate, train)
    for f in train:
        inner = [u for u in train if u != f]
        picks = choose(lab, gate, inner)
        without[f] = picks
        held[f] = lab.apgr_rows(lab.score(picks, gate, inner, f), f)
        ins[f] = lab.apgr_rows(lab.score(everything, gate, inner, f), f)
    return GateResult(held, ins, everything, without)


def run(lab: Lab) -> dict[str, object]:
    """Every gate's held-out table, and the nested choice of the gate itself."""
    out: dict[str, object] = {"length": lab.base}
    results = {name: evaluate_gate(lab, g, lab.names) for name, g in GATES.items()}
    for name, r in results.items():
        out[name] = {
            "held_out": r.held_out,
            "in_sample": r.in_sample,
            "picks_all": {g: p.label() for g, p in r.picks_all.items()},
            "picks_without": {f: {g: p.label() for g, p in ps.items()}
                              for f, ps in r.picks_without.items()},
        }  # fmt: skip
    nested: dict[str, float] = {}
    gate_choice: dict[str, str] = {}
    for f in lab.names:
        inner = [u for u in lab.names if u != f]
        best = max(
            GATES,
            key=lambda name: _gate_key(lab, evaluate_gate(lab, GATES[name], inner).held_out),
        )
        gate_choice[f] = best
        nested[f] = results[best].held_out[f]  # weights for f are chosen without f already
    out["nested gate"] = {"held_out": nested, "gate_without": gate_choice}
    return out


def _gate_key(lab: Lab, held: dict[str, float]) -> tuple[float, float]:
    gains = [v - lab.base[f] for f, v in held.items()]
    return round(min(gains), 4), round(float(np.mean(gains)), 4)


def table(result: dict[str, object], names: Sequence[str]) -> str:
    """Rows per gate (held out, in-sample choice) beside length; worst gain and mean."""
    base = result["length"]
    assert isinstance(base, dict)
    lines = [f"{'candidate':<48}" + "".join(f"{n[:8]:>9}" for n in names) + "   worst    mean"]

    def row(label: str, r: dict[str, float]) -> None:
        worst = min(r[n] - base[n] for n in names)
        lines.append(
            f"{label:<48}" + "".join(f"{r[n]:>9.3f}" for n in names)
            + f"  {worst:+.3f}  {np.mean([r[n] for n in names]):.3f}"
        )  # fmt: skip

    row("prompt length", base)
    for name in GATES:
        g = result[name]
        assert isinstance(g, dict)
        row(f"{name}: held out", g["held_out"])
        row(f"{name}: in-sample choice", g["in_sample"])
    ng = result["nested gate"]
    assert isinstance(ng, dict)
    row("gate chosen too (nested)", ng["held_out"])
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table and the picks (or ``--json``)."""
    p = argparse.ArgumentParser(prog="python -m router.lab.gated", description=__doc__)
    p.add_argument("--data", type=Path, nargs="+", default=[Path("../shared/data/router")])
    p.add_argument("--pair", action="append", default=[], metavar="FILE=WEAK,STRONG")
    p.add_argument("--max-tokens", type=int, default=48)
    p.add_argument("--embeddings-cache", type=Path)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--priors", nargs="*", choices=PRIORS, default=[],
        help="only length plus these priors (default: the wide candidate set)",
    )  # fmt: skip
    args = p.parse_args(argv)
    corpus = load_corpus(args.data, parse_pair_overrides(args.pair))
    encoder = Encoder.load(device="cpu", runtime="onnx", max_tokens=args.max_tokens)
    emb, tokens = encode_outcomes(encoder, corpus.outcomes, args.embeddings_cache)
    design = corpus_design(corpus, emb, tokens)
    prompts = corpus.outcomes.prompts
    types = np.asarray([prompt_type(q) for q in prompts], dtype=np.str_)
    spread = np.asarray([-option_spread(q) for q in prompts])  # alike options: harder
    stem = np.asarray([stem_share(q) for q in prompts])
    lab = Lab(design, types, spread, stem, args.priors)
    result = run(lab)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(table(result, lab.names))
        for name in GATES:
            g = result[name]
            assert isinstance(g, dict)
            print(f"\n{name}, chosen on all eight: {g['picks_all']}")
            for f, picks in g["picks_without"].items():
                print(f"  without {f}: {picks}")
        print("\ngate chosen without each family:", result["nested gate"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
