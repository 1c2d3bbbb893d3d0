"""``router model list`` and ``router model rollback``: the shared, versioned classifier heads.

``list`` prints promoted versions, newest first (the first one serves), and the newest entries
of the promotion log. ``rollback`` stops serving the current version: the previous one (or, past
the first, the policy's own head) serves again on every replica within ``learning.head_poll_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from typing import Any

import orjson


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``router model``."""
    p = sub.add_parser("model", help="list or roll back the promoted classifier heads")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    ls = msub.add_parser("list", help="promoted head versions and the promotion log")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_cmd)
    rb = msub.add_parser("rollback", help="serve the previous head again")
    rb.set_defaults(func=rollback_cmd)


async def _with_store(action: Any) -> Any:
    from router.cli.redis_access import open_redis
    from router.learning.heads_store import HeadStore

    handle = await open_redis()
    try:
        return await action(HeadStore(handle.client))
    finally:
        await handle.aclose()


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


async def _listing(store: Any) -> dict[str, Any]:
    versions = []
    for i, v in enumerate(await store.history()):
        head = await store.get(v)
        meta = head.metadata if head is not None else {}
        versions.append(
            {
                "version": v,
                "serving": i == 0,
                "created": _when(head.created_s) if head is not None else None,
                "source": meta.get("source"),
                "learning": meta.get("learning"),
            }
        )
    log = []
    for e in await store.entries(20):
        log.append({**e, "detail": json.loads(e.get("detail") or "{}")})
    return {"versions": versions, "log": log}


def list_cmd(args: argparse.Namespace) -> int:
    """Print the versions and the log."""
    try:
        out = asyncio.run(_with_store(_listing))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return 0
    if not out["versions"]:
        print("no promoted head: the policy's own head serves")
    for v in out["versions"]:
        mark = "*" if v["serving"] else " "
        g = v["learning"] or {}
        nums = (
            f"candidate {g.get('candidate_apgr')} vs current {g.get('current_apgr')}, "
            f"length {g.get('length_apgr')} on {g.get('labels')} labels"
            if g
            else ""
        )
        print(f"{mark} {v['version']:<6} {v['created']}  {v['source']}  {nums}")
    if out["log"]:
        print("log (newest first):")
    for e in out["log"]:
        d = e["detail"]
        when = _when(float(e.get("ts") or 0))
        print(f"  {when}  {e['action']:<8} {e.get('version') or '-':<6} {d.get('reason', '')}")
    return 0


def rollback_cmd(args: argparse.Namespace) -> int:
    """Pop the serving version."""

    async def rollback(store: Any) -> tuple[str | None, str | None]:
        result: tuple[str | None, str | None] = await store.rollback()
        return result

    try:
        popped, now = asyncio.run(_with_store(rollback))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if popped is None:
        print("nothing to roll back: the policy's own head already serves", file=sys.stderr)
        return 1
    print(f"rolled back {popped}; now serving {now or 'the policy head'}")
    return 0
