"""Build the gateway's classifier from policy settings, falling back to the heuristic."""

from __future__ import annotations

import structlog

from router.classify.base import Classification, Classifier
from router.classify.heuristic import HeuristicClassifier
from router.policy.sections.classifier import ClassifierSettings
from router.protocol.chat_request import ChatRequest


class FallbackClassifier:
    """The heuristic, serving because the trained model failed to load.

    ``reason`` says why; the gateway exports it as a metric (``isinstance`` check) and
    ``source`` is ``heuristic-fallback`` so every ledger row shows it too.
    """

    source = "heuristic-fallback"

    def __init__(self, reason: str) -> None:
        """Wrap a fresh :class:`HeuristicClassifier`."""
        self.reason = reason
        self._inner = HeuristicClassifier()

    async def classify(self, req: ChatRequest) -> Classification:
        """Score with the heuristic and mark the result as a fallback."""
        c = await self._inner.classify(req)
        return Classification(
            score=c.score, source=self.source, latency_s=c.latency_s, embedding=c.embedding
        )

    async def aclose(self) -> None:
        """Release the inner heuristic."""
        await self._inner.aclose()


def build_classifier(settings: ClassifierSettings) -> Classifier:
    """The classifier ``settings`` ask for; blocking (the trained model loads in about 1 s).

    ``kind: trained`` that cannot load (missing package, weights or device) logs a warning and
    returns a :class:`FallbackClassifier`; it never raises for that.
    """
    if settings.kind == "heuristic":
        return HeuristicClassifier()
    from router.classify.trained import TrainedClassifier

    try:
        return TrainedClassifier.load(settings)
    except Exception as exc:  # any load failure must degrade, not stop the gateway
        reason = f"{type(exc).__name__}: {exc}"
        # a fresh logger: rare, and it follows the logging configuration of the moment
        structlog.get_logger(__name__).warning(
            "trained_classifier_unavailable", fallback="heuristic", reason=reason
        )
        return FallbackClassifier(reason)
