#!/usr/bin/env bash
# session 14, call 4: the harness (benchmarks/gpu_resnet50.py), GPU decode, at HEAD, with the
# GPU's clocks and power sampled every 200 ms beside it
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv,noheader
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,utilization.gpu,temperature.gpu --format=csv -lms 200 > $OUT/clocks.csv 2>&1 &
S1=$!
nvidia-smi --query-gpu=timestamp,clocks.video,clocks_event_reasons.active --format=csv -lms 200 > $OUT/clocks_video.csv 2>&1 &
S2=$!
mode=max-autotune-no-cudagraphs
C="python3 benchmarks/gpu_resnet50.py --clients 10,256 --seconds 6 --warmup 2 --ceiling-seconds 2 --compile $mode --compile-dynamic --model-compile $mode --model-timeout 0 --variants gpu --json $OUT/gpu_resnet50.json --plot $OUT/gpu_resnet50.png"
echo "# $C"
date +%H:%M:%S
timeout 560 $C 2>&1 | while IFS= read -r l; do printf "%s %s\n" "$(date +%T.%N | cut -c1-12)" "$l"; done | tee $OUT/gpu_resnet50.log | grep -v -E "^[0-9:.]{12} (W1|E1|  )|AUTOTUNE|triton_|SingleProcess|Autotune|strides|dtypes|select_algorithm"
date +%H:%M:%S
kill $S1 $S2
