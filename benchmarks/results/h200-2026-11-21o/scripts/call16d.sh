#!/usr/bin/env bash
# session 16, call 3: the harness with the Triton resize (GPU and CPU decode)
set -u
export TORCHWEIR_CACHE=/tmp/twcache
mode=max-autotune-no-cudagraphs
C="python3 benchmarks/gpu_resnet50.py --clients 10,256 --seconds 6 --warmup 2 --ceiling-seconds 2 --compile $mode --compile-dynamic --model-compile $mode --model-timeout 0 --variants gpu,cpu --json $OUT/gpu_resnet50.json --plot $OUT/gpu_resnet50.png"
echo "# $C"
date +%H:%M:%S
timeout 570 $C 2>&1 | while IFS= read -r l; do printf "%s %s\n" "$(date +%T.%N | cut -c1-12)" "$l"; done > $OUT/gpu_resnet50.log
grep -v -E "^[0-9:.]{12} (W1|E1|  )|AUTOTUNE|triton_|SingleProcess|Autotune|strides|dtypes|select_algorithm|UserWarning" $OUT/gpu_resnet50.log | tail -60
date +%H:%M:%S
