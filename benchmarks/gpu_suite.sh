#!/usr/bin/env bash
# Every GPU number in README.md, in one go, on the GPU machine (writes to ${OUT:-results}).
#   1. the GPU tests (pytest -m gpu)
#   2. stage ceilings, the service at 10 and 256 clients (eager CUDA-graph model), and the
#      naive service: benchmarks/gpu_resnet50.py
#   3. the service at 256 clients with the compiled model (its compile is cached by step 2)
set -uo pipefail
out=${OUT:-benchmarks/results}
mkdir -p "$out"
mode=max-autotune-no-cudagraphs
quiet() { grep -v "^W1\|AUTOTUNE\|triton_\|SingleProcess\|^  \|Autotune\|strides\|dtypes"; }

timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --timeout 120 \
    2>&1 | tee "$out/gpu_tests.log" | tail -3
timeout 330 python3 benchmarks/gpu_resnet50.py --clients 10,256 --seconds 6 --warmup 2 \
    --ceiling-seconds 2 --compile "$mode" --json "$out/gpu_resnet50.json" \
    --plot "$out/gpu_resnet50.png" 2>&1 | quiet | tee "$out/gpu_resnet50.log" | tail -24
timeout 150 python3 benchmarks/gpu_resnet50.py --variants gpu,cpu --no-naive --ceilings '' \
    --model-compile "$mode" --max-batch 128 --buckets 128 --clients 256 --seconds 6 \
    --warmup 2 --json "$out/gpu_resnet50_compiled.json" 2>&1 | quiet \
    | tee "$out/gpu_resnet50_compiled.log" | tail -10
