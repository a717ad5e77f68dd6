#!/usr/bin/env bash
# session 12: gather_rows through memoryviews (working tree) against HEAD's numpy copies
# (base), CPU-decode variant, eager CUDA-graph model; alternating processes
set -u
start=$SECONDS
C="python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants model-only,service --seconds 5 --warmup 2"
for tree in base new base new; do
  left=$((240 - (SECONDS - start)))
  if [ $left -lt 60 ]; then echo "# skipped $tree: ${left}s left"; continue; fi
  if [ $tree = base ]; then P=/tmp/site:$PWD/.prof/base/src:$PWD; else P=/tmp/site:$PWD/src:$PWD; fi
  echo "# [$tree, $((SECONDS - start)) s] $C"
  PYTHONPATH=$P timeout $left $C 2>&1 | grep -E "^[a-z-]+: [0-9,]+ img/s|process CPU|gather_rows"
done
echo "# done at $((SECONDS - start)) s"
