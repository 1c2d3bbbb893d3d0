"""``router learn [--force] [--dry-run] [--base-data FILE...] [--json]``: one round of learning.

Reads the deployment's labels (shadow verdicts and ``/v1/feedback`` ``needed_strong``) from
Redis (``REDIS_URL``, or the embedded server's ``ROUTER_DATA_DIR``), trains a candidate head when
``learning.min_new_labels`` new labels with a stored prompt exist (``--force``: regardless),
scores it against the serving head on held-out labels beside prompt length, and promotes it
only if it wins. Every gateway replica then swaps to it within ``learning.head_poll_s``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any

import orjson

from router.learning.promote import LearnResult, learn_once
from router.redis import keys as lk

LOCK_S = 3600
"""How long the lock is held at most (a crashed round frees it after this)."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``router learn``."""
    p = sub.add_parser("learn", help="train a candidate head on the deployment's labels and "
                       "promote it if it beats the serving one")  # fmt: skip
    p.add_argument("--policy", type=Path, help="the policy (default: $ROUTER_POLICY)")
    p.add_argument("--force", action="store_true", help="ignore learning.min_new_labels")
    p.add_argument("--dry-run", action="store_true", help="decide, but never promote")
    p.add_argument(
        "--base-data", type=Path, nargs="*", metavar="FILE.jsonl",
        help="shipped data to train on beside the labels (default: learning.base_data)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=learn_cmd)


def load_policy_or_exit(path: Path | None) -> Any:
    """The policy at ``path`` (default ``$ROUTER_POLICY``); None after printing why not."""
    from router.policy.load import PolicyError, load_policy
    from router.settings import Settings

    target = path or Settings.from_env().policy_path
    try:
        return load_policy(target).policy
    except (PolicyError, OSError) as exc:
        print(f"error: cannot load the policy {target}: {exc}", file=sys.stderr)
        return None


async def _run(args: argparse.Namespace, policy: Any) -> LearnResult:
    from router.cli.redis_access import open_redis

    handle = await open_redis()
    owner = f"cli-{secrets.token_hex(8)}"
    try:
        # The gateway's background job takes the same lock: one round at a time.
        if not await handle.client.set(lk.lock_key(), owner, nx=True, ex=LOCK_S):
            raise RuntimeError("another learning round holds the lock (rl:{learn}:lock)")
        try:
            return await learn_once(
                handle.client,
                policy,
                force=args.force,
                promote=not args.dry_run,
                base_data=args.base_data,
            )
        finally:
            if await handle.client.get(lk.lock_key()) == owner:
                await handle.client.delete(lk.lock_key())
    finally:
        await handle.aclose()


def format_result(r: LearnResult, dry_run: bool = False) -> str:
    """The result for people."""
    lines = [
        f"labels with a stored prompt: {r.labels} ({r.new_labels} new; {r.without_prompt} "
        "without a prompt, not usable for training: observability.feedback.store_prompts)",
        f"serving head: {r.current}",
    ]
    g = r.guard
    if g is not None:
        lines.append(
            f"held-out APGR on {g.labels} labels ({g.folds} slices): candidate "
            f"{g.candidate_apgr:.3f}, current {g.current_apgr:.3f}, prompt length "
            f"{g.length_apgr:.3f}"
            + (f"; candidate - current {g.lead.format()} (95%)" if g.lead else "")
        )
    verdict = {
        "promoted": f"promoted {r.version}: every replica swaps to it",
        "refused": f"refused: {g.reason if g else ''}" + (" (--dry-run)" if dry_run else ""),
        "dry-run": f"would promote ({g.reason if g else ''}); --dry-run",
        "skipped": "skipped: " + "; ".join(r.notes),
    }[r.action]
    lines.append(verdict)
    return "\n".join(lines)


def learn_cmd(args: argparse.Namespace) -> int:
    """Run one round; exit 0 whatever it decided, 2 on bad input, 1 when Redis fails."""
    policy = load_policy_or_exit(args.policy)
    if policy is None:
        return 2
    try:
        result = asyncio.run(_run(args, policy))
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps(result.as_log(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(format_result(result, args.dry_run))
    return 0
