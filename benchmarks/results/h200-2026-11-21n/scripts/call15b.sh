#!/usr/bin/env bash
# session 15, call 2: the harness with GPU decode alone and spilling to 4, 8 or 12 CPU
# decoders in child processes (spill pools)
set -u
export TORCHWEIR_CACHE=/tmp/twcache
mode=max-autotune-no-cudagraphs
C="python3 benchmarks/gpu_resnet50.py --clients 10,256 --seconds 6 --warmup 2 --ceiling-seconds 2 --compile $mode --compile-dynamic --model-compile $mode --model-timeout 0 --variants gpu,gpu+cpu4,gpu+cpu8,gpu+cpu12 --json $OUT/gpu_resnet50.json --plot $OUT/gpu_resnet50.png"
echo "# $C"
date +%H:%M:%S
timeout 570 $C 2>&1 | while IFS= read -r l; do printf "%s %s\n" "$(date +%T.%N | cut -c1-12)" "$l"; done > $OUT/gpu_resnet50.log
grep -v -E "^[0-9:.]{12} (W1|E1|  )|AUTOTUNE|triton_|SingleProcess|Autotune|strides|dtypes|select_algorithm|UserWarning" $OUT/gpu_resnet50.log | tail -60
date +%H:%M:%S
