"""Hot reload: a good edit is swapped in, a bad edit is rejected and the last good one stays."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from router.policy.store import PolicyStore
from tests.unit.core.policy_text import POLICY, write_policy


def _touch_later(path: Path, text: str) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_reload_good_then_bad(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    store = PolicyStore.open(path)
    first = store.current
    swapped: list[str] = []
    store.on_reload = lambda: swapped.append(store.current.hash)

    _touch_later(path, POLICY.replace("max_body_bytes: 2000", "max_body_bytes: 3000"))
    assert store.changed()
    assert store.reload() is True
    assert store.current.policy.limits.max_body_bytes == 3000
    assert swapped == [store.current.hash] and store.current.hash != first.hash

    good = store.current
    _touch_later(path, POLICY.replace("max_body_bytes: 2000", "max_body_bytes: -1"))
    assert store.reload() is False
    assert store.current is good
    assert store.failed_reloads == 1 and store.last_error and "max_body_bytes" in store.last_error
    assert not store.changed()


async def test_watch_picks_up_changes(tmp_path: Path) -> None:
    path = write_policy(tmp_path)
    store = PolicyStore.open(path)
    store.start(interval_s=0.02)
    try:
        _touch_later(path, POLICY.replace("max_body_bytes: 2000", "max_body_bytes: 2500"))
        for _ in range(200):
            if store.current.policy.limits.max_body_bytes == 2500:
                break
            await asyncio.sleep(0.01)
        assert store.current.policy.limits.max_body_bytes == 2500
    finally:
        await store.stop()
