"""A real OpenAI-compatible HTTP mock upstream for integration tests, load tests and benchmarks.

Run it::

    python -m router.testing.mock_upstream --port 9100 --latency-ms 5 --tokens-per-s 200

or from Python::

    with MockUpstreamProcess(fail_status=503, fail_first_n=2) as mock:   # child process
        client = openai.OpenAI(base_url=mock.url, api_key="x")

    async with running_mock(MockConfig(reply_tokens=32)) as url:          # in this event loop
        ...

Replies are deterministic per prompt (see :mod:`router.testing.mock_replies`); knobs live in
:class:`MockConfig` (see :mod:`router.testing.mock_config` for model-name and header control).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import orjson
from pydantic import ValidationError

from router.testing.mock_app import MockApp, MockState, build_mock_app
from router.testing.mock_config import MockConfig
from router.testing.mock_process import READY_PREFIX, MockUpstreamProcess, running_mock, serve

__all__ = [
    "MockApp",
    "MockConfig",
    "MockState",
    "MockUpstreamProcess",
    "build_mock_app",
    "main",
    "parse_args",
    "running_mock",
]


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv: Sequence[str] | None = None) -> tuple[str, int, MockConfig]:
    """Parse CLI arguments into ``(host, port, config)``; flags override ``--config-json``."""
    p = argparse.ArgumentParser(
        prog="python -m router.testing.mock_upstream",
        description="OpenAI-compatible mock upstream. Model-name directives (mock-fail-500, "
        "mock-hang, mock-cut-3, ...) and x-mock-* headers override these knobs per request.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9100, help="0 = a free port")
    p.add_argument("--config-json", default=None, help="a whole MockConfig as JSON")
    p.add_argument("--latency-ms", type=float)
    p.add_argument("--ttft-ms", type=float)
    p.add_argument("--tokens-per-s", type=float)
    p.add_argument("--reply-tokens", type=int)
    p.add_argument("--fail-status", type=int)
    p.add_argument("--fail-rate", type=float)
    p.add_argument("--fail-first-n", type=int)
    p.add_argument("--fail-models", type=_csv, help="comma-separated model names")
    p.add_argument("--fail-seed", type=int)
    p.add_argument("--retry-after-s", type=float)
    p.add_argument("--stream-cut-after", type=int)
    p.add_argument("--stream-cut-mode", choices=["abort", "eof", "error"])
    p.add_argument("--hang", action="store_const", const=True)
    p.add_argument("--require-api-key")
    p.add_argument("--canned-json", dest="canned", type=orjson.loads, help='{"prompt": "answer"}')
    p.add_argument("--prompt-tokens", type=int)
    p.add_argument("--completion-tokens", type=int)
    p.add_argument("--models", type=_csv, help="comma-separated ids for GET /v1/models")
    p.add_argument("--history-size", type=int)
    args = vars(p.parse_args(argv))
    host: str = args.pop("host")
    port: int = args.pop("port")
    raw = args.pop("config_json")
    knobs = {k: v for k, v in args.items() if v is not None}
    try:
        base: Any = orjson.loads(raw) if raw else {}
        if not isinstance(base, dict):
            p.error("--config-json must be a JSON object")
        return host, port, MockConfig.model_validate({**base, **knobs})
    except (orjson.JSONDecodeError, ValidationError) as exc:
        p.error(str(exc))


def _announce(base_url: str) -> None:
    sys.stdout.write(f"{READY_PREFIX}{base_url}\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point: serve until SIGINT/SIGTERM; prints ``MOCK_UPSTREAM_READY <url>``."""
    host, port, config = parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        asyncio.run(serve(config, host, port, _announce))
    else:
        uvloop.run(serve(config, host, port, _announce))


if __name__ == "__main__":
    main()
