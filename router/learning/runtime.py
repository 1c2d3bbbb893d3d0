"""The learning loop inside one gateway process: shadow jobs, head hot-swap, the opt-in job.

:class:`LearningRuntime` is built by ``Services.start`` when Redis is reachable. It owns

* the :class:`~router.learning.shadow.ShadowRunner`;
* a watcher that polls the shared head store every ``learning.head_poll_s`` and, when the
  serving version changed (a promotion or a rollback anywhere), loads it and swaps the
  classifier without a restart;
* with ``learning.background: true``, a job that runs :func:`router.learning.promote.learn_once`
  every ``learning.interval_s`` on whichever replica takes the Redis lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from router.backends.base import Backend
from router.learning.heads_store import HeadStore
from router.learning.shadow import ShadowRunner
from router.ledger.writer import Ledger
from router.policy.schema import ModelSpec, Policy
from router.redis import keys as lk
from router.tasks import Tasks, cancel_and_wait

SwapHead = Callable[[str | None], Awaitable[None]]
"""Serve the head in a folder (None: the policy's own), without a restart."""

log = structlog.get_logger("router.learning")

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LearningRuntime:
    """Shadowing, head watching and the background job of one gateway process."""

    def __init__(
        self,
        redis: Any,
        heads_root: Path,
        current_policy: Callable[[], Policy],
        swap_head: SwapHead,
        backend_for: Callable[[ModelSpec], Backend],
        ledger: Ledger | None,
        tasks: Tasks,
    ) -> None:
        """Keep state in ``redis``; heads are unpacked under ``heads_root`` and served through
        ``swap_head``; shadow calls go through ``backend_for``, are written to ``ledger`` and
        run in ``tasks`` (drained by their owner, not here)."""
        self.current_policy = current_policy
        self.swap_head = swap_head
        self.redis = redis
        self.shadow = ShadowRunner(redis, current_policy, backend_for, ledger, tasks)
        self.heads = HeadStore(redis)
        self.heads_root = heads_root
        self.serving: str | None = None
        """The promoted version this process serves (None: the policy's own head)."""
        self.swaps = 0
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def start(
        cls,
        redis: Any,
        current_policy: Callable[[], Policy],
        swap_head: SwapHead,
        backend_for: Callable[[ModelSpec], Backend],
        ledger: Ledger | None,
        tasks: Tasks,
    ) -> LearningRuntime:
        """Load the serving head (if one was promoted), then start the watcher and the job."""
        root = Path(tempfile.mkdtemp(prefix="router-heads-"))
        rt = cls(redis, root, current_policy, swap_head, backend_for, ledger, tasks)
        try:
            await rt.check_head()
        except Exception as exc:  # the store is optional: serve the policy's head
            log.warning("head_check_failed", error=repr(exc))
        loop = asyncio.get_running_loop()
        rt._tasks.append(loop.create_task(rt._watch()))
        rt._tasks.append(loop.create_task(rt._job()))
        return rt

    async def check_head(self) -> bool:
        """Swap to the serving version when it changed; whether it swapped."""
        version = await self.heads.current()
        if version == self.serving:
            return False
        model_dir = await self.heads.materialize(version, self.heads_root) if version else None
        await self.swap_head(str(model_dir) if model_dir else None)
        log.info("head_swapped", version=version or "policy", previous=self.serving or "policy")
        self.serving = version
        self.swaps += 1
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.current_policy().learning.head_poll_s)
            try:
                await self.check_head()
            except Exception as exc:  # keep serving the head we have
                log.warning("head_check_failed", error=repr(exc))

    async def _job(self) -> None:
        """Every ``interval_s``: when enabled and this replica takes the lock, learn once."""
        owner = secrets.token_hex(8)
        while True:
            settings = self.current_policy().learning
            await asyncio.sleep(settings.interval_s)
            if not settings.background:
                continue
            ttl_s = int(max(600.0, settings.interval_s))
            try:
                if not await self.redis.set(lk.lock_key(), owner, nx=True, ex=ttl_s):
                    continue
                from router.learning.promote import learn_once

                result = await learn_once(self.redis, self.current_policy())
                log.info("learn_job", **result.as_log())
                await self.check_head()
            except Exception as exc:
                log.warning("learn_job_failed", error=repr(exc))
            finally:
                with contextlib.suppress(Exception):
                    # Compare and delete in one step: a round that outlived the lock's TTL must
                    # not delete the lock another replica has taken since.
                    await self.redis.eval(_RELEASE_LOCK, 1, lk.lock_key(), owner)

    async def aclose(self) -> None:
        """Stop the watcher and the job (shadow jobs in flight are drained with the app's
        other background tasks)."""
        await cancel_and_wait(self._tasks)
        await asyncio.to_thread(shutil.rmtree, self.heads_root, True)
