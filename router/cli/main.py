"""The ``router`` command: one subcommand per module in this package."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMAND_MODULES = (
    "serve",
    "policy",
    "keys",
    "ledger",
    "report",
    "train",
    "eval",
    "calibrate",
    "score",
    "cache",
    "learn",
    "model",
)
"""Modules of ``router.cli`` that each expose ``register(subparsers)``."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="router", description="hybrid-router: an OpenAI-compatible LLM gateway."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"router.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``router`` console script."""
    from router.cli.redis_access import RedisUnreachable

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except RedisUnreachable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
