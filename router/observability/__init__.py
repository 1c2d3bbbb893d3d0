"""Production observability: Prometheus metrics, OpenTelemetry traces, classifier drift, feedback.

The pieces hang off one :class:`~router.observability.hub.Observability` object owned by
:class:`router.services.Services`; ``pipeline.record`` calls :func:`~router.observability.hub.
on_record` once per request. See ``docs/observability.md``.
"""
