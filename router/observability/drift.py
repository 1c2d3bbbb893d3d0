"""Classifier drift: live scores over a rolling window against the training distribution (PSI).

The reference is the histogram of the shipped classifier's scores on its training prompts
(``score_reference.json``: quantile bin edges and the share of training prompts in each bin).
:class:`DriftMonitor` keeps the bin index of the last ``window`` scores in a ring buffer with
running counts, so an observation is O(log bins) and PSI is O(bins).

PSI = sum over bins of (live - train) * ln(live / train), with shares floored at ``EPSILON``.
Rules of thumb: below 0.1 no real shift, 0.1-0.25 moderate, above 0.25 the traffic no longer
looks like the training data (retrain, or recalibrate the thresholds).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import structlog

from router.policy.sections.observability import DriftSettings

log = structlog.get_logger("router.drift")
EPSILON = 1e-4
"""Floor of a bin's share, so that an empty bin does not make PSI infinite."""


@dataclass(frozen=True, slots=True)
class Reference:
    """A score histogram: ``len(edges) == len(proportions) + 1``, edges increasing."""

    edges: tuple[float, ...]
    proportions: tuple[float, ...]
    source: str | None = None
    """The classifier the histogram belongs to; scores of other classifiers are not compared."""

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.proportions) + 1 or len(self.proportions) < 2:
            raise ValueError("a reference needs n >= 2 proportions and n + 1 edges")
        if list(self.edges) != sorted(self.edges):
            raise ValueError("reference edges must be increasing")

    @classmethod
    def load(cls, path: Path) -> Reference:
        """Read a ``{"edges", "proportions", "source"}`` JSON file."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            edges=tuple(float(x) for x in data["edges"]),
            proportions=tuple(float(x) for x in data["proportions"]),
            source=data.get("source"),
        )

    @classmethod
    def shipped(cls) -> Reference:
        """The histogram of the shipped classifier (``score_reference.json`` next to this file)."""
        return cls.load(Path(__file__).resolve().parent / "score_reference.json")

    def bin_of(self, score: float) -> int:
        """The bin ``score`` falls in; scores outside the edges go to the first or last bin."""
        i = bisect_right(self.edges, score, 1, len(self.edges) - 1) - 1
        return i

    def matches(self, source: str) -> bool:
        """Whether scores from classifier ``source`` are comparable with this histogram."""
        return self.source is None or self.source == source


def psi(expected: tuple[float, ...] | list[float], actual: list[float]) -> float:
    """The population stability index of ``actual`` shares against ``expected`` shares."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


class DriftMonitor:
    """The rolling window of live scores, its PSI, and the alert state."""

    def __init__(self, reference: Reference, settings: DriftSettings | None = None) -> None:
        """Start an empty window sized by ``settings``."""
        self.reference = reference
        self.settings = settings or DriftSettings()
        self._bins: deque[int] = deque(maxlen=self.settings.window)
        self._counts = [0] * len(reference.proportions)
        self._since_check = 0
        self.last_psi: float | None = None
        """PSI at the last check (None until ``min_samples`` scores were seen)."""
        self.alerting = False
        self.alerts = 0
        self.observed = 0
        self.skipped = 0
        """Scores not compared: from a classifier the reference does not describe."""

    @property
    def samples(self) -> int:
        """Scores in the window now."""
        return len(self._bins)

    def configure(self, settings: DriftSettings) -> None:
        """Apply new settings (a policy reload); a new window size keeps the newest scores."""
        if settings == self.settings:
            self.settings = settings  # the same values: keep the new object (identity checks)
            return
        if settings.window != self.settings.window:
            self._bins = deque(self._bins, maxlen=settings.window)
            self._counts = [0] * len(self.reference.proportions)
            for b in self._bins:
                self._counts[b] += 1
        self.settings = settings

    def observe(self, score: float, source: str) -> None:
        """Add one classifier score; every ``check_every`` scores, recompute PSI and alert."""
        if not self.reference.matches(source):
            self.skipped += 1
            return
        b = self.reference.bin_of(score)
        bins = self._bins
        if len(bins) == bins.maxlen:
            self._counts[bins[0]] -= 1
        bins.append(b)
        self._counts[b] += 1
        self.observed += 1
        self._since_check += 1
        if self._since_check >= self.settings.check_every:
            self._since_check = 0
            self.check()

    def shares(self) -> list[float]:
        """The share of the window's scores in each reference bin."""
        n = len(self._bins)
        return [c / n for c in self._counts] if n else [0.0] * len(self._counts)

    def current_psi(self) -> float | None:
        """PSI of the window now; None while it holds fewer than ``min_samples`` scores."""
        if len(self._bins) < self.settings.min_samples:
            return None
        return psi(self.reference.proportions, self.shares())

    def check(self) -> float | None:
        """Recompute PSI; log ``classifier_drift`` when it crosses ``psi_alert`` upwards."""
        value = self.current_psi()
        self.last_psi = value
        if value is None:
            return None
        threshold = self.settings.psi_alert
        if value >= threshold and not self.alerting:
            self.alerting = True
            self.alerts += 1
            log.warning(
                "classifier_drift",
                psi=round(value, 4),
                psi_alert=threshold,
                window=len(self._bins),
                source=self.reference.source,
                shares=[round(s, 4) for s in self.shares()],
                expected=list(self.reference.proportions),
            )
        elif value < threshold and self.alerting:
            self.alerting = False
            log.info("classifier_drift_recovered", psi=round(value, 4), psi_alert=threshold)
        return value
