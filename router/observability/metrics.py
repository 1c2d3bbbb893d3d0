"""Prometheus metrics of one gateway process, on a registry owned by ``Services``.

Every metric lives on the :class:`Metrics` instance's own ``CollectorRegistry`` (no module-global
registry). Label children are cached in plain dicts, so a request pays a dict lookup and a
lock-free-ish increment per metric, not prometheus-client's label validation.

Values read at scrape time (local-model queues, GPU memory, drift) come from
:class:`RuntimeCollector`, which asks ``Services`` when ``/metrics`` is scraped, never on the
request path.

With ``router serve --workers N`` set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory that all
workers share: counters, histograms and gauges are then aggregated across workers by
prometheus-client's multiprocess mode, and the scrape-time values are those of the worker that
answered the scrape (see ``docs/observability.md``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
"""Seconds, for whole requests and upstream calls."""
OVERHEAD_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
"""Seconds, for the gateway's own share of a request (classifier included)."""
CLASSIFIER_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
"""Seconds, for one classification (queueing in the micro-batcher included)."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Read by prometheus-client itself, and by ``Settings.metrics_multiproc_dir``."""
M = TypeVar("M", Counter, Histogram, Gauge)


class Children(Generic[M]):
    """A labelled metric with its children cached by label values."""

    __slots__ = ("_cache", "metric")

    def __init__(self, metric: M) -> None:
        """Wrap ``metric``."""
        self.metric: M = metric
        self._cache: dict[tuple[str, ...], M] = {}

    def get(self, *values: str) -> M:
        """The child for ``values`` (created once, then a dict lookup)."""
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self.metric.labels(*values)
        return child


class Metrics:
    """The gateway's metrics; see ``docs/observability.md`` for what each one means."""

    def __init__(
        self, registry: CollectorRegistry | None = None, multiproc_dir: str | None = None
    ) -> None:
        """Create every metric on ``registry`` (a new one by default).

        ``multiproc_dir`` is ``PROMETHEUS_MULTIPROC_DIR``: scrapes merge every worker's files.
        """
        self.multiproc_dir = multiproc_dir
        r = self.registry = registry or CollectorRegistry(auto_describe=True)
        self.runtime_collectors: tuple[Collector, ...] = ()
        """Scrape-time collectors, also registered on :attr:`registry`."""
        self.requests = Children(
            Counter(
                "router_requests",
                "Chat requests by route alias, answering model, HTTP status and cache outcome.",
                ("route", "model", "status", "cache"),
                registry=r,
            )
        )
        self.latency = Children(
            Histogram(
                "router_request_duration_seconds",
                "Whole-request latency (arrival to the last byte handed to the client).",
                ("route",),
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.overhead = Children(
            Histogram(
                "router_gateway_overhead_seconds",
                "Request latency minus the time spent waiting on upstream models.",
                ("route",),
                buckets=OVERHEAD_BUCKETS,
                registry=r,
            )
        )
        self.upstream = Children(
            Histogram(
                "router_upstream_duration_seconds",
                "Time spent waiting on the backend (retries and fallbacks included).",
                ("model",),
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.classifier = Children(
            Histogram(
                "router_classifier_duration_seconds",
                "Classifier latency per request, by classifier source.",
                ("source",),
                buckets=CLASSIFIER_BUCKETS,
                registry=r,
            )
        )
        self.tokens = Children(
            Counter(
                "router_tokens",
                "Tokens by team, model and kind (prompt or completion).",
                ("team", "model", "kind"),
                registry=r,
            )
        )
        self.spend = Children(
            Counter(
                "router_spend_usd",
                "Spend in US dollars at policy prices, by team and model.",
                ("team", "model"),
                registry=r,
            )
        )
        self.saved = Children(
            Counter(
                "router_savings_usd",
                "Counterfactual cost on the route's strongest tier minus actual spend, by team.",
                ("team",),
                registry=r,
            )
        )
        self.upstream_failures = Children(
            Counter(
                "router_upstream_failures",
                "Failed upstream attempts (before retries and fallbacks), by model and code.",
                ("model", "code"),
                registry=r,
            )
        )
        self.budget_remaining = Children(
            Gauge(
                "router_budget_remaining_usd",
                "Budget left in the current window (limit minus settled spend), per scope.",
                ("scope", "window"),
                registry=r,
                multiprocess_mode="mostrecent",
            )
        )
        self.budget_limit = Children(
            Gauge(
                "router_budget_limit_usd",
                "The budget limit of each scope seen so far.",
                ("scope", "window"),
                registry=r,
                multiprocess_mode="mostrecent",
            )
        )
        self.feedback = Children(
            Counter(
                "router_feedback",
                "Feedback received by kind (up, down, score, needed_strong).",
                ("kind",),
                registry=r,
            )
        )

    def render(self) -> bytes:
        """The text exposition of every metric (all workers' in multiprocess mode)."""
        mp_dir = self.multiproc_dir
        if not mp_dir:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=mp_dir)  # type: ignore[no-untyped-call]
        local = CollectorRegistry(auto_describe=True)
        for c in self.runtime_collectors:
            local.register(c)
        return generate_latest(merged) + generate_latest(local)

    def add_runtime(self, collector: Collector) -> None:
        """Register a scrape-time collector."""
        self.registry.register(collector)
        self.runtime_collectors = (*self.runtime_collectors, collector)


QueueSource = Callable[[], Iterable[tuple[str, int, int]]]
"""Yields ``(model, waiting, running)`` for each local model."""
DriftSource = Callable[[], tuple[float | None, int, bool, int, int]]
"""Returns ``(psi, samples, alerting, alerts, skipped)``."""


class RuntimeCollector(Collector):
    """Values read when ``/metrics`` is scraped: local-model queues, GPU memory, drift."""

    def __init__(self, queues: QueueSource, drift: DriftSource) -> None:
        """Read queues and drift through the given callables."""
        self._queues = queues
        self._drift = drift

    def describe(self) -> Iterable[Metric]:
        """No fixed description (families vary with what is loaded)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """The current values."""
        waiting = GaugeMetricFamily(
            "router_local_queue_depth",
            "Requests waiting for a slot of an in-process local model.",
            labels=("model",),
        )
        running = GaugeMetricFamily(
            "router_local_running", "Generations running on an in-process local model.",
            labels=("model",),
        )  # fmt: skip
        for model, n_wait, n_run in self._queues():
            waiting.add_metric((model,), n_wait)
            running.add_metric((model,), n_run)
        yield waiting
        yield running
        yield from gpu_memory()
        value, samples, alerting, alerts, skipped = self._drift()
        yield GaugeMetricFamily(
            "router_classifier_drift_psi",
            "PSI of classifier scores in the rolling window against the training distribution "
            "(NaN until the window holds min_samples scores).",
            value=float("nan") if value is None else value,
        )
        yield GaugeMetricFamily(
            "router_classifier_drift_window_samples",
            "Classifier scores in the drift window.",
            value=samples,
        )
        yield GaugeMetricFamily(
            "router_classifier_drift_alert",
            "1 while PSI is at or above the policy's observability.drift.psi_alert.",
            value=1.0 if alerting else 0.0,
        )
        yield GaugeMetricFamily(
            "router_classifier_drift_alerts",
            "Drift alerts raised since start (crossings of psi_alert).",
            value=alerts,
        )
        yield GaugeMetricFamily(
            "router_classifier_drift_skipped",
            "Scores not compared: their classifier is not the one the reference describes.",
            value=skipped,
        )


def gpu_memory() -> Iterator[Metric]:
    """GPU memory per CUDA device, when torch is already loaded and sees a GPU.

    torch is never imported here (it takes seconds): only a process that loaded it for the
    encoder or a local model reports GPU memory.
    """
    torch: Any = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if not torch.cuda.is_available():
            return
        fam = GaugeMetricFamily(
            "router_gpu_memory_bytes",
            "GPU memory by device and kind (allocated or reserved by torch; total; free).",
            labels=("device", "kind"),
        )
        for i in range(torch.cuda.device_count()):
            dev = str(i)
            fam.add_metric((dev, "allocated"), float(torch.cuda.memory_allocated(i)))
            fam.add_metric((dev, "reserved"), float(torch.cuda.memory_reserved(i)))
            free, total = torch.cuda.mem_get_info(i)
            fam.add_metric((dev, "free"), float(free))
            fam.add_metric((dev, "total"), float(total))
    except Exception:  # a broken driver must not break the scrape
        return
    yield fam
