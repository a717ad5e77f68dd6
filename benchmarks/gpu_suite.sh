#!/usr/bin/env bash
# Every GPU number in README.md, in one go, on the GPU machine (writes to ${OUT:-results}).
#   1. the GPU tests (pytest -m gpu)
#   2. stage ceilings (model as CUDA graphs and compiled; CPU decode in threads and in
#      processes; nvJPEG), the service at 10 and 256 clients with the compiled model (one
#      dynamic-batch compile, ~140 s, cached for the targets) in four decode variants: CPU
#      in processes and in threads, GPU through DecodeTensor's default (torchvision's
#      decoder on a one-GPU machine) and through our nvJPEG binding; and the naive
#      service: benchmarks/gpu_resnet50.py
#   3. decode+resize next to a replaying model, torchvision's nvJPEG path against our
#      binding, with CUDA's default 8 hardware queues and with torchweir's 32:
#      benchmarks/nvjpeg_decoders.py (SKIP_DECODERS=1 leaves it out)
set -uo pipefail
out=${OUT:-benchmarks/results}
mkdir -p "$out"
mode=max-autotune-no-cudagraphs
quiet() { grep -v "^W1\|^E1\|AUTOTUNE\|triton_\|SingleProcess\|^  \|Autotune\|strides\|dtypes"; }

timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --timeout 120 \
    2>&1 | tee "$out/gpu_tests.log" | tail -3
timeout 480 python3 benchmarks/gpu_resnet50.py --clients 10,256 --seconds 6 --warmup 2 \
    --ceiling-seconds 2 --compile "$mode" --compile-dynamic --model-compile "$mode" \
    --model-timeout 0 --variants cpu,cpu-threads,gpu,gpu-nvjpeg --json "$out/gpu_resnet50.json" \
    --plot "$out/gpu_resnet50.png" 2>&1 | quiet | tee "$out/gpu_resnet50.log" | tail -30
[ -n "${SKIP_DECODERS:-}" ] && exit 0
for queues in 8 32; do
    CUDA_DEVICE_MAX_CONNECTIONS=$queues timeout 100 python3 benchmarks/nvjpeg_decoders.py \
        --threads 1,2 --seconds 2 --json "$out/nvjpeg_decoders_${queues}_queues.json" 2>&1 \
        | tee "$out/nvjpeg_decoders_${queues}_queues.log" | tail -5
done
