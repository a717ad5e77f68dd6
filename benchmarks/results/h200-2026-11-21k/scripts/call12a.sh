#!/usr/bin/env bash
# session 12, call 1: GPU tests; then the compiled-model service and its plain-thread
# ceiling (gpu_joint_ceiling.py), the working tree first (it compiles), then base (4bd7b20)
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
echo "# timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts= --timeout 120 tests/kernels/gpu"
timeout 150 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --timeout 120 tests/kernels/gpu 2>&1 | tail -15
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --variants threads,service --rounds 2 --seconds 5 --warmup 2"
for tree in new base; do
  left=$((570 - (SECONDS - start)))
  if [ $tree = base ] && [ $left -lt 100 ]; then echo "# skipped base: ${left}s left"; break; fi
  if [ $tree = base ]; then P=/tmp/site:$PWD/.prof/base/src:$PWD; else P=/tmp/site:$PWD/src:$PWD; fi
  echo "# [$tree, $((SECONDS - start)) s] $C --json \$OUT/ab1_${tree}.json"
  PYTHONPATH=$P timeout $left $C --json $OUT/ab1_${tree}.json 2>&1 | grep -E "^round|Error|error" | grep -v -E "Warning|triton|autotun"
done
echo "# done at $((SECONDS - start)) s"
