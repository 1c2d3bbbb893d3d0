"""``router policy check PATH...``: validate policy files before deploying them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from router.policy.load import PolicyError, load_policy


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``policy`` subcommand group."""
    p = sub.add_parser("policy", help="policy file tools")
    psub = p.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    check = psub.add_parser("check", help="validate policy files; exit 1 if any is invalid")
    check.add_argument("paths", nargs="+", type=Path)
    check.set_defaults(func=check_cmd)


def check_cmd(args: argparse.Namespace) -> int:
    """Print one line per file (and one per problem); exit 1 when any file is invalid."""
    failed = 0
    for path in args.paths:
        try:
            loaded = load_policy(path)
        except PolicyError as exc:
            failed += 1
            print(f"INVALID {path}", file=sys.stderr)
            for msg in exc.messages:
                print(f"  {msg}", file=sys.stderr)
            continue
        p = loaded.policy
        print(f"ok {path} (hash {loaded.hash}, {len(p.models)} models, {len(p.routes)} routes)")
    return 1 if failed else 0
