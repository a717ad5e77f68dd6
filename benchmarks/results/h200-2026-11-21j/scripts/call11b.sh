#!/usr/bin/env bash
# session 11, call 2: compiled model; base (HEAD) then TorchScript batch ops, alternating in-process threads/service
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --split --variants threads,service --rounds 2 --seconds 5 --warmup 2"
for tree in base new base; do
  left=$((570 - (SECONDS - start)))
  if [ $tree = base ] && [ $((SECONDS - start)) -gt 60 ] && [ $left -lt 110 ]; then echo "# skipped second base: ${left}s left"; break; fi
  if [ $tree = base ]; then P=/tmp/site:$PWD/.prof/base/src:$PWD; else P=/tmp/site:$PWD/src:$PWD; fi
  echo "# [$tree, $((SECONDS - start)) s] $C --json $OUT/compiled_${tree}_$SECONDS.json"
  PYTHONPATH=$P timeout $left $C --json $OUT/compiled_${tree}_$SECONDS.json 2>&1 | grep -E "^round|^  decode batch|Error|error" | grep -v Warning
done
echo "# done at $((SECONDS - start)) s"
