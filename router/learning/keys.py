"""Every Redis key of the learning loop, in one place (hash tag ``{learn}``: one slot).

======================================  ========================================================
``rl:{learn}:labels``                    stream: one entry per shadow label (see
                                         :class:`router.learning.labels.Label`); entry ids are
                                         Unix ms, trimmed to ``learning.retention_days``
``rl:{learn}:spend:<YYYYMMDD>``          integer: shadow and judge spend of that UTC day, in
                                         nano-dollars (1e-9 USD), reserved before each call
``rl:{learn}:stats:<YYYYMMDD>``          hash: shadow outcomes of that UTC day (``shadowed``,
                                         ``labels``, ``skipped_budget``, ``failed``, ...)
``rl:{learn}:heads``                     list: promoted head versions, newest (serving) first
``rl:{learn}:head:<version>``            hash: ``npz`` (base64 of ``head.npz``), ``metadata``
                                         (JSON), ``created``
``rl:{learn}:head_seq``                  integer: the last version number handed out
``rl:{learn}:log``                       stream: promotions, refusals and rollbacks with their
                                         numbers
``rl:{learn}:state``                     hash: ``labels_at_last_attempt`` (usable labels when
                                         a candidate was last trained)
``rl:{learn}:lock``                      string with a TTL: the replica running the job
======================================  ========================================================
"""

from __future__ import annotations

import time

PREFIX = "rl:{learn}"


def labels_key() -> str:
    """The stream of shadow labels."""
    return f"{PREFIX}:labels"


def spend_key(day: str | None = None) -> str:
    """The shadow spend counter of ``day`` (``YYYYMMDD``, UTC; default today)."""
    return f"{PREFIX}:spend:{day or utc_day()}"


def stats_key(day: str | None = None) -> str:
    """The shadow outcome counters of ``day`` (``YYYYMMDD``, UTC; default today)."""
    return f"{PREFIX}:stats:{day or utc_day()}"


def heads_key() -> str:
    """The list of promoted head versions, newest first."""
    return f"{PREFIX}:heads"


def head_key(version: str) -> str:
    """The hash holding one head version."""
    return f"{PREFIX}:head:{version}"


def head_seq_key() -> str:
    """The version counter."""
    return f"{PREFIX}:head_seq"


def log_key() -> str:
    """The stream of promotion decisions and rollbacks."""
    return f"{PREFIX}:log"


def state_key() -> str:
    """The job's bookkeeping hash."""
    return f"{PREFIX}:state"


def lock_key() -> str:
    """The background job's lock."""
    return f"{PREFIX}:lock"


def utc_day(ts_s: float | None = None) -> str:
    """``YYYYMMDD`` (UTC) of ``ts_s`` (Unix seconds; default now)."""
    return time.strftime("%Y%m%d", time.gmtime(time.time() if ts_s is None else ts_s))
