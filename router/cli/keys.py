"""``router keys create | list | revoke | update``: manage virtual keys in Redis (``REDIS_URL``).

``create`` prints the secret once (``--json``: ``{"key": "sk-...", "id": "..."}``); only its
SHA-256 digest is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson
from pydantic import ValidationError

from router.keys.requests import KeyCreate, KeyUpdate
from router.keys.store import KeyNotFound, RedisKeyStore

WINDOWS = ("day", "week", "month", "total")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``keys`` subcommand group."""
    p = sub.add_parser("keys", help="virtual keys: create, list, revoke, update")
    ksub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    c = ksub.add_parser("create", help="create a key and print its secret once")
    c.add_argument("--team", required=True)
    c.add_argument("--tenant", help="cache/budget tenant (default: the team)")
    c.add_argument("--name")
    _limit_args(c)
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=lambda a: _run(_create(a)))

    ls = ksub.add_parser("list", help="list keys (no secrets)")
    ls.add_argument("--team")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=lambda a: _run(_list(a)))

    r = ksub.add_parser("revoke", help="revoke a key (effective everywhere within ~1 s)")
    r.add_argument("id")
    r.add_argument("--json", action="store_true", help="print JSON")
    r.set_defaults(func=lambda a: _run(_revoke(a)))

    u = ksub.add_parser("update", help="change a key's limits; 'none' clears one")
    u.add_argument("id")
    u.add_argument("--team")
    u.add_argument("--name")
    _limit_args(u, update=True)
    u.add_argument("--json", action="store_true", help="print JSON")
    u.set_defaults(func=lambda a: _run(_update(a)))


def _limit_args(p: argparse.ArgumentParser, update: bool = False) -> None:
    p.add_argument(
        "--budget-usd", help="spend limit in US dollars" + (" ('none')" if update else "")
    )
    p.add_argument("--window", choices=WINDOWS, help="budget window (default month)")
    p.add_argument("--rpm", help="requests per minute")
    p.add_argument("--tpm", help="tokens per minute")
    p.add_argument("--models", help="comma-separated models/routes the key may use")
    p.add_argument("--expires", help="expiry: 2026-12-31 or an ISO 8601 time")


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        v = getattr(args, name, None)
        if v is None:
            continue
        out[name] = None if isinstance(v, str) and v.lower() == "none" else v
    return out


FIELDS = ("team", "tenant", "name", "budget_usd", "window", "rpm", "tpm", "models", "expires")


async def _store() -> tuple[RedisKeyStore, Any]:
    from router.cli.redis_access import open_redis

    handle = await open_redis()
    return RedisKeyStore(handle.client), handle


def _run(coro: Any) -> int:
    try:
        code: int = asyncio.run(coro)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"error: {where}: {first['msg']}", file=sys.stderr)
        return 2
    except KeyNotFound as exc:
        print(f"error: no key {exc.args[0]!r}", file=sys.stderr)
        return 1
    return code


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    for k, v in data.items():
        print(f"{k}: {v}")


async def _create(args: argparse.Namespace) -> int:
    spec = KeyCreate.model_validate(_given(args, FIELDS))
    store, handle = await _store()
    try:
        secret, key = await store.create(spec.team, **spec.fields())
    finally:
        await handle.aclose()
    if args.json:
        _print({"key": secret, "id": key.id}, True)
    else:
        print(f"id:  {key.id}\nkey: {secret}\n(the key is shown once; only its hash is stored)")
    return 0


async def _list(args: argparse.Namespace) -> int:
    store, handle = await _store()
    try:
        keys = await store.list(args.team)
    finally:
        await handle.aclose()
    if args.json:
        _print([k.public() for k in keys], True)
        return 0
    for k in keys:
        budget = f"${k.budget_usd:g}/{k.window}" if k.budget_usd is not None else "-"
        state = "active" if k.active() else ("revoked" if k.revoked else "expired")
        print(f"{k.id}  team={k.team}  budget={budget}  rpm={k.rpm or '-'}  "
              f"tpm={k.tpm or '-'}  models={','.join(k.models) or '*'}  {state}")  # fmt: skip
    return 0


async def _revoke(args: argparse.Namespace) -> int:
    store, handle = await _store()
    try:
        key = await store.revoke(args.id)
    finally:
        await handle.aclose()
    _print(key.public() if args.json else {"revoked": key.id}, args.json)
    return 0


async def _update(args: argparse.Namespace) -> int:
    spec = KeyUpdate.model_validate(_given(args, FIELDS))
    store, handle = await _store()
    try:
        key = await store.update(args.id, **spec.changes())
    finally:
        await handle.aclose()
    _print(key.public(), args.json)
    return 0
