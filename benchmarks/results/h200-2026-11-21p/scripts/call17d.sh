#!/usr/bin/env bash
# session 17, call 4: the harness's seventh run (GPU and CPU decode), now also measuring
# the GPU stages together in plain threads (the "joint" ceiling) in the same run
set -u
export TORCHWEIR_CACHE=/tmp/twcache
mode=max-autotune-no-cudagraphs
C="python3 benchmarks/gpu_resnet50.py --clients 10,256 --seconds 6 --warmup 2 --ceiling-seconds 2 --compile $mode --compile-dynamic --model-compile $mode --model-timeout 0 --variants gpu,cpu --json $OUT/gpu_resnet50.json --plot $OUT/gpu_resnet50.png"
echo "# $C" > $OUT/gpu_resnet50.log
date +%H:%M:%S
timeout 580 $C 2>&1 | while IFS= read -r l; do printf "%s %s\n" "$(date +%T.%N | cut -c1-12)" "$l"; done >> $OUT/gpu_resnet50.log
grep -v -E "^[0-9:.]{12} (W1|E1|  )|AUTOTUNE|triton_|SingleProcess|Autotune|strides|dtypes|select_algorithm|UserWarning" $OUT/gpu_resnet50.log | tail -40 | cut -c1-400
date +%H:%M:%S
