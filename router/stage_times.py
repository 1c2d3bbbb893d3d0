"""When each stage of one request ran: a few ``perf_counter`` stamps set by the pipeline.

They feed the latency histograms (the gateway overhead is the total minus :attr:`upstream_s`)
and, when tracing is on, the spans of the request, built after the fact from these stamps so
that the request path pays nothing for tracing when it is off.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StageTimes:
    """``time.perf_counter()`` stamps of one finished request; 0.0 means "did not happen"."""

    planned: float = 0.0
    """Before the classifier (after parsing, auth and planning)."""
    routed: float = 0.0
    """After the classifier and the routing decision."""
    admitted: float = 0.0
    """After the budget reservation and rate limits; the backend call starts here."""
    upstream_s: float = 0.0
    """Seconds spent waiting on backends: the call (with retries and fallbacks), and for a
    stream each wait for the next chunk."""
