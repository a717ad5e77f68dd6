#!/usr/bin/env bash
# session 11, call 4: compiled model; the working tree first (it compiles), then base (ca5cf9a)
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --variants threads,service --rounds 2 --seconds 5 --warmup 2"
for tree in new base; do
  left=$((540 - (SECONDS - start)))
  if [ $tree = base ] && [ $left -lt 100 ]; then echo "# skipped base: ${left}s left"; break; fi
  if [ $tree = base ]; then P=/tmp/site:$PWD/.prof/base/src:$PWD; else P=/tmp/site:$PWD/src:$PWD; fi
  echo "# [$tree, $((SECONDS - start)) s] $C --json $OUT/compiled2_${tree}.json"
  PYTHONPATH=$P timeout $left $C --json $OUT/compiled2_${tree}.json 2>&1 | grep -E "^round|Error|error" | grep -v -E "Warning|triton|autotun"
done
echo "# done at $((SECONDS - start)) s"
