"""A test double of the Classifier seam: a fixed score, counting its calls."""

from __future__ import annotations

from dataclasses import dataclass

from router.classify.base import Classification
from router.protocol.chat_request import ChatRequest


@dataclass
class FixedClassifier:
    """Returns ``score`` for every request; ``fail`` makes it raise instead."""

    score: float = 0.5
    fail: bool = False
    calls: int = 0

    async def classify(self, req: ChatRequest) -> Classification:
        """The fixed verdict."""
        self.calls += 1
        if self.fail:
            raise RuntimeError("classifier failure (scripted)")
        return Classification(score=self.score, source="fixed", latency_s=0.0)

    async def aclose(self) -> None:
        """Nothing to release."""
