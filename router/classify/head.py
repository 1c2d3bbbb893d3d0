"""The trained head: a linear model over the embedding and the cheap features (numpy only).

``raw = standardise([embedding, features]) · weights + bias`` estimates the strong model's gain
over the weak one; ``score = sigmoid(platt_a * raw + platt_b)`` turns it into P(the strong model
answers better). Serving needs numpy alone; fitting (:func:`fit_ridge`) is closed-form.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

SCALAR_TERMS = 32
"""Most weighted columns :meth:`LinearHead.predict_one` sums in plain floats (numpy beyond)."""
WEIGHTS_FILE = "head.npz"
METADATA_FILE = "metadata.json"


@dataclass(frozen=True, slots=True)
class LinearHead:
    """Standardisation, linear weights and a Platt calibration, all float64 vectors."""

    mean: F64
    scale: F64
    weights: F64
    bias: float
    platt_a: float
    platt_b: float
    feature_names: tuple[str, ...]
    """Names of the feature columns after the embedding columns."""
    embedding_dim: int
    _terms: tuple[tuple[bool, int, float, float, float], ...] = field(
        init=False, repr=False, compare=False
    )
    """Per column of non-zero weight: (from the embedding?, index there, mean, scale, weight)."""

    def __post_init__(self) -> None:
        dim = self.embedding_dim
        terms = tuple(
            (i < dim, i if i < dim else i - dim, float(self.mean[i]), float(self.scale[i]),
             float(self.weights[i]))
            for i in np.flatnonzero(self.weights).tolist()
        )  # fmt: skip
        object.__setattr__(self, "_terms", terms)

    def design(self, embeddings: F32, features: F32) -> F64:
        """Join and standardise ``[n, dim]`` embeddings and ``[n, k]`` features."""
        x = np.hstack([embeddings.astype(np.float64), features.astype(np.float64)])
        if x.shape[1] != len(self.weights):
            raise ValueError(f"expected {len(self.weights)} input columns, got {x.shape[1]}")
        out: F64 = (x - self.mean) / self.scale
        return out

    @property
    def active(self) -> tuple[int, ...]:
        """The input columns (embedding first, then features) whose weight is not zero: the
        only ones a score depends on."""
        return tuple(int(i) for i in np.flatnonzero(self.weights))

    @property
    def active_features(self) -> tuple[int, ...]:
        """The feature columns (indices into ``feature_names``) whose weight is not zero."""
        return tuple(i - self.embedding_dim for i in self.active if i >= self.embedding_dim)

    def raw(self, embeddings: F32, features: F32) -> F64:
        """The uncalibrated score (estimated strong-minus-weak gain, arbitrary units).

        Only the columns of non-zero weight enter the product: the others add exactly ±0, so
        the value is the same (to the last bit for a one-column head; a longer sum may round
        in another order), and a head that reads a few features (the shipped one reads one)
        costs a few multiplications instead of ``embedding_dim`` + features."""
        dim = self.embedding_dim
        if embeddings.shape[1] != dim or features.shape[1] != len(self.weights) - dim:
            n = embeddings.shape[1] + features.shape[1]
            raise ValueError(f"expected {len(self.weights)} input columns, got {n}")
        cols = np.flatnonzero(self.weights)
        x = np.hstack(
            [
                embeddings[:, cols[cols < dim]].astype(np.float64),
                features[:, cols[cols >= dim] - dim].astype(np.float64),
            ]
        )
        design = (x - self.mean[cols]) / self.scale[cols]
        out: F64 = design @ self.weights[cols] + self.bias
        return out

    def predict(self, embeddings: F32, features: F32) -> F64:
        """P(the strong model is needed) for each row, in [0, 1]."""
        z = self.platt_a * self.raw(embeddings, features) + self.platt_b
        out: F64 = 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))
        return out

    def predict_one(self, embedding: F32, features: F32) -> float:
        """:meth:`predict` of one prompt (``[dim]`` embedding, ``[k]`` features), in plain
        floats when the head weighs at most :data:`SCALAR_TERMS` columns (the gateway scores a
        lone prompt; numpy's per-call overhead was most of its cost). It may differ from
        :meth:`predict` in the last bit; every path that reports a prompt's score (the gateway's
        header, ``router score``) uses this one."""
        if len(self._terms) > SCALAR_TERMS:
            return float(self.predict(embedding[None, :], features[None, :])[0])
        raw = 0.0
        for from_embedding, j, mean, scale, weight in self._terms:
            x = float(embedding[j]) if from_embedding else float(features[j])
            raw += (x - mean) / scale * weight
        z = self.platt_a * (raw + self.bias) + self.platt_b
        return 1.0 / (1.0 + math.exp(-min(40.0, max(-40.0, z))))

    def save(self, directory: Path) -> Path:
        """Write ``head.npz`` into ``directory``; returns its path."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / WEIGHTS_FILE
        np.savez(
            path,
            mean=self.mean,
            scale=self.scale,
            weights=self.weights,
            scalars=np.asarray([self.bias, self.platt_a, self.platt_b, self.embedding_dim]),
            feature_names=np.asarray(self.feature_names, dtype=np.str_),
        )
        return path

    @classmethod
    def load(cls, directory: Path) -> LinearHead:
        """Read ``head.npz`` from ``directory`` (no pickles)."""
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as z:
            bias, a, b, dim = (float(v) for v in z["scalars"])
            return cls(
                mean=z["mean"].astype(np.float64),
                scale=z["scale"].astype(np.float64),
                weights=z["weights"].astype(np.float64),
                bias=bias,
                platt_a=a,
                platt_b=b,
                feature_names=tuple(str(n) for n in z["feature_names"]),
                embedding_dim=int(dim),
            )


def read_metadata(directory: Path) -> dict[str, object]:
    """The model directory's ``metadata.json`` (empty when absent)."""
    path = directory / METADATA_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def fit_ridge(x: F64, y: F64, alpha: float, sample_weight: F64 | None = None) -> tuple[F64, float]:
    """Weighted ridge regression on already standardised ``x``; returns ``(weights, bias)``."""
    w = np.ones(len(y)) if sample_weight is None else sample_weight
    sw = w / w.sum()
    x_mean = sw @ x
    y_mean = float(sw @ y)
    xc = x - x_mean
    yc = y - y_mean
    xtw = xc.T * w
    gram = xtw @ xc + alpha * np.eye(x.shape[1])
    coef: F64 = np.linalg.solve(gram, xtw @ yc)
    return coef, y_mean - float(x_mean @ coef)


def fit_platt(raw: F64, label: F64, iterations: int = 50) -> tuple[float, float]:
    """Fit ``P(label) = sigmoid(a * raw + b)`` by Newton's method (a 1-D logistic regression)."""
    a, b = 1.0, 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(a * raw + b, -40, 40)))
        g = np.array([((p - label) * raw).sum(), (p - label).sum()])
        s = p * (1 - p) + 1e-9
        h = np.array([[(s * raw * raw).sum(), (s * raw).sum()], [(s * raw).sum(), s.sum()]])
        h += 1e-6 * np.eye(2)
        step = np.linalg.solve(h, g)
        a, b = a - float(step[0]), b - float(step[1])
        if np.abs(step).max() < 1e-8:
            break
    return a, b


def standardiser(x: F64) -> tuple[F64, F64]:
    """Column means and scales (a constant column gets scale 1)."""
    mean: F64 = x.mean(axis=0)
    scale: F64 = x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    return mean, scale
