#!/usr/bin/env bash
# session 12, call 2: the harness (benchmarks/gpu_resnet50.py) on the working tree, GPU and CPU decode
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
mode=max-autotune-no-cudagraphs
C="python3 benchmarks/gpu_resnet50.py --clients 10,256 --seconds 6 --warmup 2 --ceiling-seconds 2 --compile $mode --compile-dynamic --model-compile $mode --model-timeout 0 --variants gpu,cpu --json $OUT/gpu_resnet50.json --plot $OUT/gpu_resnet50.png"
echo "# $C"
timeout 570 $C 2>&1 | grep -v "^W1\|^E1\|AUTOTUNE\|triton_\|SingleProcess\|^  \|Autotune\|strides\|dtypes\|select_algorithm"
