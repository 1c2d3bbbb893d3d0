#!/usr/bin/env bash
# Issue #21's goals in one sitting (docs/performance-goals.md): wrk against the mock, an older
# build and LiteLLM's proxy; 1,024 concurrent streams; start-up and memory; the semantic cache
# on ordinary prompts. Run it on a quiet machine, from the repository root, after `make install`
# (and `loadtests/litellm`'s venv for the LiteLLM target):
#
#     loadtests/measure_goals.sh [OUT_DIR] [REV]
#
# OUT_DIR (default: a new temporary directory) receives one output file per command and
# meta.txt (commit, times, load averages); REV (default 728aabb, the build before issue #21's
# work) is the older build served in the same wrk run.
set -euo pipefail
out=${1:-$(mktemp -d -t hr-goals-XXXXXX)}
rev=${2:-728aabb}
py=.venv/bin/python
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True
mkdir -p "$out"
stamp() { echo "$1 $(date -u +%H:%M:%S) $(cat /proc/loadavg)" >> "$out/meta.txt"; }
echo "commit $(git rev-parse --short HEAD)" > "$out/meta.txt"
stamp start
$py loadtests/bench_wrk.py --auto --litellm --rev "$rev" --connections 32 --duration-s 10 \
    > "$out/wrk.txt" 2>&1
stamp wrk
$py loadtests/bench_streams.py --streams 1024 --tokens 100 --ramp-s 5 --direct \
    > "$out/streams_direct.txt" 2>&1
$py loadtests/bench_streams.py --streams 1024 --tokens 100 --ramp-s 5 > "$out/streams_gw.txt" 2>&1
stamp streams
$py loadtests/bench_startup.py --starts 3 --request-model local-smollm2 \
    > "$out/startup_default.txt" 2>&1
$py loadtests/bench_startup.py --policy loadtests/policies/classifier.yaml --mock \
    --request-model auto --requests 8 --starts 1 --workers 2 > "$out/startup_auto.txt" 2>&1
stamp startup
.venv/bin/router cache eval --pairs tests/data/cache_pairs_long_holdout2.jsonl \
    > "$out/cache_eval.txt" 2>&1
stamp end
echo "$out"
