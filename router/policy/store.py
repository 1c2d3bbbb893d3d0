"""The live policy: validated once, swapped atomically, hot-reloaded when its files change."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path

import structlog

from router.policy.load import LoadedPolicy, PolicyError, load_policy

log = structlog.get_logger(__name__)


class PolicyStore:
    """Holds the current policy and replaces it when its files change and still validate.

    An invalid edit is logged and the last good policy keeps serving.
    """

    def __init__(
        self, path: Path, initial: LoadedPolicy, env: Mapping[str, str] | None = None
    ) -> None:
        self._path = path
        self._env = env
        self._current = initial
        self._mtimes = self._stat(initial.files)
        self._task: asyncio.Task[None] | None = None
        self.reloads = 0
        self.failed_reloads = 0
        self.last_error: str | None = None
        self.on_reload: Callable[[], None] | None = None
        """Called after a new policy is swapped in (e.g. to build backends it needs)."""

    @classmethod
    def open(cls, path: str | Path, env: Mapping[str, str] | None = None) -> PolicyStore:
        """Load ``path`` (raising :class:`PolicyError` if invalid) and hold it.

        ``env`` resolves ``${NAME}`` references (see :func:`load_policy`), on every reload too.
        """
        p = Path(path)
        return cls(p, load_policy(p, env), env)

    @property
    def current(self) -> LoadedPolicy:
        """The policy in force now."""
        return self._current

    @staticmethod
    def _stat(files: tuple[Path, ...]) -> dict[Path, float]:
        out: dict[Path, float] = {}
        for f in files:
            with contextlib.suppress(OSError):
                out[f] = f.stat().st_mtime_ns
        return out

    def changed(self) -> bool:
        """Whether any of the policy's files changed since the last (attempted) load."""
        return self._stat(self._current.files) != self._mtimes

    def reload(self) -> bool:
        """Load the files again; swap in the result if it validates. Returns True on a swap."""
        try:
            new = load_policy(self._path, self._env)
        except PolicyError as exc:
            self._mtimes = self._stat(self._current.files)
            self.failed_reloads += 1
            self.last_error = str(exc)
            log.error(
                "policy_reload_rejected",
                errors=exc.messages,
                policy_hash=self._current.hash,
                keeping=self._current.hash,
            )
            return False
        self._mtimes = self._stat(new.files)
        if new.hash == self._current.hash:
            return False
        old = self._current.hash
        self._current = new
        self.reloads += 1
        self.last_error = None
        log.info("policy_reloaded", policy_hash=new.hash, previous=old)
        if self.on_reload is not None:
            try:
                self.on_reload()
            except Exception as exc:
                log.error("policy_reload_hook_failed", error=repr(exc), policy_hash=new.hash)
        return True

    async def watch(self, interval_s: float = 1.0) -> None:
        """Poll the policy's files every ``interval_s`` and reload on change, until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            if self.changed():
                # Editors write files in several steps; let the last write land.
                await asyncio.sleep(min(0.05, interval_s))
                self.reload()

    def start(self, interval_s: float = 1.0) -> None:
        """Start watching in the background."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.watch(interval_s))

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
