#!/usr/bin/env bash
# session 13, call 1: the service's settings around the closed loop (one process, interleaved),
# with one second of GPU timeline per variant (top kernels by side); then plain-thread ceilings
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
V=service,service+resnet50.instance_num=1,service+runtime.clients=512,service+resnet50.instance_num=1+runtime.clients=512,service,service+resnet50.instance_num=1
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2 --timeline 1"
echo "# [$((SECONDS - start)) s] $C --variants $V --json \$OUT/sweep13.json > \$OUT/sweep13.log"
timeout 420 $C --variants $V --json $OUT/sweep13.json > $OUT/sweep13.log 2>&1
grep -E "img/s|GPU timeline|Error|error" $OUT/sweep13.log | grep -v -E "Warning|triton_|autotun|select_algorithm" | cut -c1-1500
J="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --variants threads --rounds 2 --seconds 4 --warmup 2"
for m in 1 2; do
  left=$((575 - (SECONDS - start)))
  if [ $left -lt 80 ]; then echo "# skipped threads model$m: ${left}s left"; continue; fi
  echo "# [$((SECONDS - start)) s] $J --model-instances $m --json \$OUT/threads_model$m.json"
  timeout $left $J --model-instances $m --json $OUT/threads_model$m.json 2>&1 | grep -E "^round|Error|error" | grep -v -E "Warning|triton_|autotun"
done
echo "# done at $((SECONDS - start)) s"
