#!/usr/bin/env bash
# session 12, call 3: settings around the fused decode, service only (working tree)
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --variants service --rounds 2 --seconds 5 --warmup 2"
run() {
  local name=$1; shift
  left=$((575 - (SECONDS - start)))
  if [ $left -lt 70 ]; then echo "# skipped $name: ${left}s left"; return; fi
  echo "# [$name, $((SECONDS - start)) s] $C $* --json \$OUT/sweep_${name}.json"
  timeout $left $C "$@" --json $OUT/sweep_${name}.json 2>&1 | grep -E "^round|Error|error" | grep -v -E "Warning|triton|autotun"
}
run default
run decode3 --decode-instances 3
run decode4max32 --decode-instances 4 --set decode.max=32
run model3 --model-instances 3
run switch5ms --switch-interval 0.005
run switch100us --switch-interval 0.0001
run default2
echo "# done at $((SECONDS - start)) s"
