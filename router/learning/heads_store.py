"""Versioned classifier heads, shared by every replica through Redis.

A head is small (``head.npz``, a few kB, and ``metadata.json``), so each version is one Redis
hash. The list ``rl:{learn}:heads`` holds promoted versions, newest first: its first entry is
the head every replica serves (none: the policy's own head, e.g. the shipped one). Promotion
pushes a version; rollback pops the serving one, so the previous one serves again. Every
promotion, refusal and rollback is appended to the log stream with its numbers.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router.classify.head import METADATA_FILE, WEIGHTS_FILE
from router.redis import keys as lk

LOG_MAXLEN = 10_000


@dataclass(frozen=True, slots=True)
class HeadVersion:
    """One stored head."""

    version: str
    created_s: float
    metadata: dict[str, Any]


class HeadStore:
    """Put, promote, roll back and fetch heads."""

    def __init__(self, redis: Any) -> None:
        """Use ``redis`` (a ``decode_responses`` client)."""
        self.redis = redis

    async def new_version(self) -> str:
        """A fresh version name (``v1``, ``v2``, ...), unique across replicas."""
        n = await self.redis.incr(lk.head_seq_key())
        return f"v{n}"

    async def put(self, version: str, model_dir: Path) -> None:
        """Store the head in ``model_dir`` as ``version`` (not yet serving)."""
        npz, meta = await asyncio.to_thread(_read_head, model_dir)
        await self.redis.hset(
            lk.head_key(version),
            mapping={
                "npz": base64.b64encode(npz).decode(),
                "metadata": meta,
                "created": repr(time.time()),
            },
        )

    async def promote(self, version: str, entry: dict[str, Any]) -> None:
        """Make ``version`` the serving head and log ``entry`` (its numbers)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(lk.heads_key(), version)
        pipe.xadd(lk.log_key(), _log_fields("promote", version, entry), maxlen=LOG_MAXLEN)
        await pipe.execute()

    async def log(self, action: str, version: str | None, entry: dict[str, Any]) -> None:
        """Append a decision that changes nothing (e.g. ``refuse``) to the log."""
        await self.redis.xadd(
            lk.log_key(), _log_fields(action, version or "", entry), maxlen=LOG_MAXLEN
        )

    async def current(self) -> str | None:
        """The serving version; None when the policy's own head serves."""
        found: str | None = await self.redis.lindex(lk.heads_key(), 0)
        return found

    async def history(self) -> list[str]:
        """Promoted versions, newest (serving) first."""
        found: list[str] = await self.redis.lrange(lk.heads_key(), 0, -1)
        return found

    async def rollback(self) -> tuple[str | None, str | None]:
        """Stop serving the current version; ``(rolled back, now serving)``.

        The previous promoted version serves again (None: the policy's own head).
        """
        popped: str | None = await self.redis.lpop(lk.heads_key())
        now = await self.current()
        if popped is not None:
            await self.log("rollback", popped, {"now_serving": now or "policy head"})
        return popped, now

    async def get(self, version: str) -> HeadVersion | None:
        """The metadata of ``version``; None when it is not stored."""
        raw: list[str | None] = await self.redis.hmget(
            lk.head_key(version), ["metadata", "created"]
        )
        meta, created = raw
        if meta is None:
            return None
        return HeadVersion(version, float(created or 0.0), json.loads(meta))

    async def materialize(self, version: str, root: Path) -> Path:
        """Write ``version``'s ``head.npz`` and ``metadata.json`` under ``root``; the folder."""
        out = root / version
        if await asyncio.to_thread((out / WEIGHTS_FILE).is_file):
            return out
        npz, meta = await self.redis.hmget(lk.head_key(version), ["npz", "metadata"])
        if npz is None:
            raise KeyError(f"head {version} is not stored")
        await asyncio.to_thread(_unpack, root, version, base64.b64decode(npz), meta or "{}")
        return out

    async def entries(self, count: int = 50) -> list[dict[str, str]]:
        """The newest ``count`` log entries, newest first."""
        rows = await self.redis.xrevrange(lk.log_key(), "+", "-", count=count)
        return [fields for _id, fields in rows]


def _read_head(model_dir: Path) -> tuple[bytes, str]:
    """``head.npz``'s bytes and ``metadata.json``'s text (``{}`` when absent)."""
    meta_path = model_dir / METADATA_FILE
    meta = meta_path.read_text(encoding="utf-8") if meta_path.is_file() else "{}"
    return (model_dir / WEIGHTS_FILE).read_bytes(), meta


def _unpack(root: Path, version: str, npz: bytes, meta: str) -> None:
    """Write a head folder atomically: a reader sees no folder or a whole one."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    (tmp / WEIGHTS_FILE).write_bytes(npz)
    (tmp / METADATA_FILE).write_text(meta, encoding="utf-8")
    try:
        tmp.replace(root / version)
    except OSError:  # another process wrote it first
        shutil.rmtree(tmp, ignore_errors=True)


def _log_fields(action: str, version: str, entry: dict[str, Any]) -> dict[str, str]:
    return {
        "ts": repr(time.time()),
        "action": action,
        "version": version,
        "detail": json.dumps(entry, sort_keys=True),
    }
