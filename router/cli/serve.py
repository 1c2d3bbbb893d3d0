"""``router serve``: run the gateway on uvicorn (uvloop, httptools)."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from router.policy.load import PolicyError, load_policy


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` subcommand."""
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--policy", type=Path, help="policy file (env ROUTER_POLICY)")
    p.add_argument("--host", help="bind address (env ROUTER_HOST, default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (env ROUTER_PORT, default 8080)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Validate the policy, then serve until interrupted."""
    import uvicorn

    from router.settings import Settings, publish_for_workers

    settings = Settings.from_env(policy_path=args.policy, host=args.host, port=args.port)
    try:
        loaded = load_policy(settings.policy_path, settings.policy_env)
    except PolicyError as exc:
        print("policy is invalid:", *exc.messages, sep="\n  ", file=sys.stderr)
        return 2
    # Without REDIS_URL, this process owns one embedded Redis 8 that every worker shares.
    embedded = None
    if settings.redis_url is None:
        from router.redis.embedded import EmbeddedRedis, EmbeddedRedisError

        embedded = EmbeddedRedis(settings.data_dir)
        try:
            settings = settings.model_copy(update={"redis_url": embedded.start()})
        except EmbeddedRedisError as exc:  # the gateway still serves, without cache/budgets
            print(f"embedded Redis unavailable: {exc}", file=sys.stderr)
            embedded = None
        else:
            print(f"hybrid-router: embedded Redis at {embedded.url}", file=sys.stderr)
    print(
        f"hybrid-router: serving {settings.policy_path} (policy {loaded.hash}) on "
        f"http://{settings.host}:{settings.port} with {args.workers} worker(s)",
        file=sys.stderr,
    )
    # Workers are separate processes that rebuild settings from the environment.
    publish_for_workers(settings)
    # uvicorn re-raises SIGTERM after its graceful shutdown; with the default handler that kills
    # the process before ``finally`` stops the embedded Redis and removes its published URL.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(
            "router.app:app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
