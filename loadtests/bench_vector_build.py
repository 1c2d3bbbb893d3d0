"""The first stage's vector-set insert: server CPU per ``VADD`` and the recall it keeps, by
build exploration factor (``EF``) and links per node (``M``).

    .venv/bin/python loadtests/bench_vector_build.py [--data ../shared/data/router]
        [--per-file 1500] [--bench-prompts 3000]

Embeds, with the shipped classifier's static first stage (:mod:`router.classify.static`), both
sides of every true pair of the repo's pair sets (``tests/data/cache_pairs*.jsonl``) and a crowd
of distractors: the false pairs' sides, ``--bench-prompts`` prompts shaped like
``loadtests/bench_wrk.py``'s (``wrk… 3-17: say hi``) and, when ``--data`` exists, the first
``--per-file`` prompts of each labelled file there. For each setting it inserts the crowd and
the pairs' ``a`` sides in one shuffled order into an embedded Redis 8 (``VADD ... Q8``, as the
cache stores them), reads the server's CPU per ``VADD`` from ``INFO commandstats``, then
searches each ``b`` side as the cache does (``VSIM ... COUNT 1 EF 50 NOTHREAD``) and counts how
often the top result is its partner, beside how often the exact nearest neighbour is. Prints one
JSON line per setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import redis

from router.classify.trained import TrainedClassifier
from router.policy.sections.classifier import ClassifierSettings
from router.redis.embedded import EmbeddedRedis

ROOT = Path(__file__).resolve().parents[1]
SETTINGS: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("EF 200", ("EF", 200)),
    ("EF 100", ("EF", 100)),
    ("EF 50", ("EF", 50)),
    ("EF 50 M 8", ("EF", 50, "M", 8)),
    ("EF 30", ("EF", 30)),
)


def crowd(args: argparse.Namespace, false_sides: list[str]) -> list[str]:
    """The distractors: false pairs' sides, benchmark-shaped prompts, labelled prompts."""
    out = list(false_sides)
    out += [f"wrkq {i % 16}-{i // 16}: say hi" for i in range(args.bench_prompts)]
    data = Path(args.data)
    for path in sorted(data.glob("*.jsonl")) if data.is_dir() else []:
        with path.open(encoding="utf-8") as fh:
            for i, line in enumerate(fh):
                if i >= args.per_file:
                    break
                row = json.loads(line)
                text = row.get("prompt") or row.get("question") or row.get("instruction")
                if isinstance(text, str):
                    out.append(text[:2000])
    return out


async def main(args: argparse.Namespace) -> None:
    pairs = [
        json.loads(line)
        for path in sorted((ROOT / "tests" / "data").glob("cache_pairs*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    true = [p for p in pairs if p["same"]]
    false_sides = [side for p in pairs if not p["same"] for side in (p["a"], p["b"])]
    static = TrainedClassifier.load(ClassifierSettings(kind="trained")).static
    assert static is not None
    a_side = static.embed([p["a"] for p in true])
    b_side = static.embed([p["b"] for p in true])
    others = static.embed(crowd(args, false_sides))
    order = [(f"d{i}", v) for i, v in enumerate(others) if v is not None]
    order += [(f"a{i}", v) for i, v in enumerate(a_side) if v is not None]
    np.random.default_rng(0).shuffle(order)
    names = [n for n, _ in order]
    matrix = np.stack([v for _, v in order])
    queries = [(i, v) for i, v in enumerate(b_side) if v is not None and a_side[i] is not None]
    exact = {i for i, v in queries if names[int(np.argmax(matrix @ v))] == f"a{i}"}
    with tempfile.TemporaryDirectory(prefix="bench-vadd-") as tmp:
        server = EmbeddedRedis(Path(tmp) / "r")
        await server.astart()
        try:
            r = redis.Redis(unix_socket_path=server.url.removeprefix("unix://"))
            command: Any = r.execute_command  # untyped in redis-py's stubs
            for label, options in SETTINGS:
                key = f"vs:{label}"
                r.config_resetstat()
                for name, v in order:
                    command("VADD", key, "FP32", v.astype("<f4").tobytes(), name, *options)
                vadd_us = r.info("commandstats")["cmdstat_VADD"]["usec_per_call"]
                found = 0
                for i, v in queries:
                    top = command(
                        "VSIM", key, "FP32", v.astype("<f4").tobytes(), "COUNT", 1, "EF", 50,
                        "NOTHREAD",
                    )  # fmt: skip
                    found += i in exact and top and top[0].decode() == f"a{i}"
                print(json.dumps({
                    "setting": label, "entries": len(order), "vadd_server_us": vadd_us,
                    "partner_is_exact_nearest": len(exact), "found_by_search": int(found),
                }), flush=True)  # fmt: skip
                r.delete(key)
        finally:
            await server.astop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "router"))
    parser.add_argument("--per-file", type=int, default=1500)
    parser.add_argument("--bench-prompts", type=int, default=3000)
    asyncio.run(main(parser.parse_args()))
