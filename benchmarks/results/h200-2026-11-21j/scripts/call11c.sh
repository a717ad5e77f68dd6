#!/usr/bin/env bash
# session 11, call 3: GPU tests; base (ca5cf9a) against the working tree (TorchScript resize + fused
# torchvision decode), decode-only and service (eager CUDA-graph model), with the GIL accounting shim
set -u
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "# pytest -m gpu tests/kernels/gpu -q"
timeout 120 python3 -m pytest -m gpu tests/kernels/gpu -q -p no:cacheprovider 2>&1 | tail -4 | tee $OUT/gpu_tests.log
SHIM=/tmp/libgil_accounting.so
gcc -O2 -shared -fPIC -o $SHIM benchmarks/gil_accounting/gil_accounting.c -ldl 2>/dev/null || { echo "no gcc: using the carried build"; SHIM=$PWD/.prof/gilcount/libgil_accounting.so; }
start=$SECONDS
C="python3 benchmarks/gpu_pipeline_profile.py --variants decode-only,service --seconds 4 --warmup 2"
for round in 1 2; do
  for tree in base new; do
    if [ $((SECONDS - start)) -gt 330 ]; then echo "# stopped: time"; break 2; fi
    if [ $tree = base ]; then P=/tmp/site:$PWD/.prof/base/src:$PWD; else P=/tmp/site:$PWD/src:$PWD; fi
    echo "# [$tree round $round, $((SECONDS - start)) s] LD_PRELOAD=$SHIM $C --json $OUT/gil_${tree}_$round.json"
    PYTHONPATH=$P LD_PRELOAD=$SHIM timeout 150 $C --json $OUT/gil_${tree}_$round.json 2>&1 | grep -E "img/s|process CPU|GIL |Error|error" | grep -v Warning
  done
done
echo "# done at $((SECONDS - start)) s"
