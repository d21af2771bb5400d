#!/usr/bin/env bash
# Train the default Time Machine model and the default PTB recipe on the GPU for a fixed number
# of steps, then on the CPU, and compare (benchmarks/gpu_check.py says what and why):
#   benchmarks/gpu_check.sh [--steps N] [--precision fp32,bf16,fp16] [--datasets timemachine,ptb]
# Needs numpy, pandas, torch, pyyaml, tqdm and pydantic only; the corpora from $SEQLM_MIRROR or
# ../shared/data (--data-dir DIR, --text FILE). Exit status 1 when a difference is over tolerance.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export SEQLM_NO_PROGRESS=1
exec python benchmarks/gpu_check.py "$@"
