"""The request path (DESIGN.md's stages in order), one module per part.

* :mod:`~router.pipeline.run`: ``run_chat``, the stages in order;
* :mod:`~router.pipeline.context`: the state of one running request, and the handle the API
  renders (``ChatOutcome``);
* :mod:`~router.outcome`: the finished request, immutable;
* :mod:`~router.pipeline.stream`: relaying an upstream stream, replaying a cached one;
* :mod:`~router.pipeline.record`: the one place a finished request is written down.

This ``__init__`` imports nothing, so that the lower packages can import the outcome type
without importing the pipeline that uses them.
"""
