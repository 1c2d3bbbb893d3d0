"""Benchmark: ONNX builds of the CPU encoder, encoder only (no features, head or batcher).

``build DIR`` writes the variants compared in ``docs/performance-classifier.md``:

* ``fp32.onnx`` / ``fp32-fused.onnx``: the packaged weights, unfused (SDPA export) and fused;
* ``int8-unfused.onnx``: dynamic int8 on the unfused graph (the build shipped before fusion);
* ``int8-fused.onnx``: what :func:`router.classify.onnx_int8.build` ships;
* ``static-int8.onnx``: static int8 (activation scales calibrated on ``--data`` prompts), the FFN
  output products left in fp32 (quantising them too drops cosine to fp32 from 0.99 to 0.93).

``measure PATH...`` embeds ``--prompts`` data-set prompts cut to ``--max-tokens`` and prints, per
model: rows one after another on a session with every core; rows side by side, one per core, on
a single-threaded session; length-sorted batches of 32 per call; batch-1 p50; the cosine to the
first model given; and the largest difference between a row's batched and lone embedding (0
means batch-independent). Run on a quiet machine::

    python loadtests/bench_encoder_variants.py build /tmp/variants
    python loadtests/bench_encoder_variants.py measure /tmp/variants/fp32.onnx \\
        /tmp/variants/int8-unfused.onnx /tmp/variants/int8-fused.onnx \\
        /tmp/variants/fp32-fused.onnx /tmp/variants/static-int8.onnx
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from router.classify.encoder import (
    Encoder,
    default_model_dir,
    default_threads,
    mean_pool,
    ort_session,
)
from router.classify.inputs import PromptText
from router.classify.onnx_int8 import build, export_fp32, fuse

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "router"


def load_prompts(path: Path, count: int, every: int = 7) -> list[PromptText]:
    """Every ``every``-th prompt of a data-set file, at most ``count``."""
    with path.open() as fh:
        rows = [json.loads(line)["prompt"] for line in fh][::every]
    return [PromptText(user=p) for p in rows[:count]]


def token_rows(prompts: Sequence[PromptText], max_tokens: int) -> list[list[int]]:
    """Encoder inputs exactly as the gateway cuts them."""
    enc = Encoder.load(device="cpu", runtime="torch", max_tokens=max_tokens, threads=1)
    return enc.token_ids(prompts)[0]


def build_variants(out: Path, data: Path, max_tokens: int) -> None:
    """Write every variant into ``out``."""
    from onnxruntime.quantization import (  # type: ignore[import-untyped]
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    out.mkdir(parents=True, exist_ok=True)
    mdir = default_model_dir()
    export_fp32(mdir, out / "fp32.onnx", "sdpa")
    quantize_dynamic(
        str(out / "fp32.onnx"),
        str(out / "int8-unfused.onnx"),
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        extra_options={"DefaultTensorType": 1},
    )
    eager = out / "fp32-eager.onnx"
    config = export_fp32(mdir, eager, "eager")
    shutil.move(str(fuse(eager, config)), out / "fp32-fused.onnx")
    build(mdir, out / "int8-fused.onnx")

    import onnx

    graph = onnx.load(str(out / "fp32.onnx")).graph
    weights = {i.name for i in graph.initializer}
    ffn_out = [
        n.name
        for n in graph.node
        if n.op_type == "MatMul"
        and n.input[1] in weights
        and "/output/dense" in n.name
        and "attention" not in n.name
    ]
    calib = token_rows(load_prompts(data / "arena_bench_v1.jsonl", 300, every=1), max_tokens)

    class Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.rows: Iterator[list[int]] = iter(calib)

        def get_next(self) -> dict[str, npt.NDArray[np.int64]] | None:
            row = next(self.rows, None)
            if row is None:
                return None
            ids = np.array([row], np.int64)
            return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    quantize_static(
        str(out / "fp32.onnx"),
        str(out / "static-int8.onnx"),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        reduce_range=True,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=ffn_out,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"DefaultTensorType": 1, "MatMulConstBOnly": True},
    )
    eager.unlink(missing_ok=True)


def _embed(session: Any, rows: Sequence[list[int]]) -> npt.NDArray[np.float32]:
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    hidden = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0]
    return mean_pool(np.asarray(hidden, np.float32), mask)


def measure(paths: Sequence[Path], rows: list[list[int]]) -> None:
    """Print one Markdown row per model."""
    threads = default_threads()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    reference: npt.NDArray[np.float32] | None = None
    print(
        f"| model ({len(rows)} prompts, mean {np.mean([len(r) for r in rows]):.1f} tokens) "
        f"| one after another, {threads} threads | side by side, 1 thread each "
        "| batched 32 | batch-1 p50 ms | cosine to first (mean / min) | batched - alone |"
    )
    print("|---|---|---|---|---|---|---|")
    for path in paths:
        many, one = ort_session(path, threads), ort_session(path, 1)
        for r in rows[:10]:
            _embed(many, [r])
        t0 = time.perf_counter()
        alone = np.concatenate([_embed(many, [r]) for r in rows])
        serial = len(rows) / (time.perf_counter() - t0)
        with ThreadPoolExecutor(threads) as pool:
            t0 = time.perf_counter()
            list(pool.map(lambda r, s=one: _embed(s, [r]), rows))
            parallel = len(rows) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        chunks = [[rows[i] for i in order[k : k + 32]] for k in range(0, len(order), 32)]
        batched = np.concatenate([_embed(many, c) for c in chunks])
        batched_rate = len(rows) / (time.perf_counter() - t0)
        lat = []
        for _ in range(100):
            t0 = time.perf_counter()
            _embed(many, [rows[0]])
            lat.append(time.perf_counter() - t0)
        reference = alone if reference is None else reference
        cos = (alone * reference).sum(axis=1)
        drift = float(np.abs(batched - alone[order]).max())
        print(
            f"| {path.name} | {serial:.0f}/s | {parallel:.0f}/s | {batched_rate:.0f}/s "
            f"| {np.percentile(lat, 50) * 1e3:.2f} | {cos.mean():.4f} / {cos.min():.4f} "
            f"| {drift:.1e} |",
            flush=True,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Build or measure, per the sub-command."""
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("out", type=Path)
    m = sub.add_parser("measure")
    m.add_argument("models", type=Path, nargs="+")
    m.add_argument("--prompts", type=int, default=256)
    for s in (b, m):
        s.add_argument("--data", type=Path, default=DATA)
        s.add_argument("--max-tokens", type=int, default=48)
    args = p.parse_args(argv)
    if args.command == "build":
        build_variants(args.out, args.data, args.max_tokens)
    else:
        prompts = load_prompts(args.data / "mmlu_mixtral_gpt4.jsonl", args.prompts)
        measure(args.models, token_rows(prompts, args.max_tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
