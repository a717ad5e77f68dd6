#!/usr/bin/env bash
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "# python3 -m pytest -m gpu -q -p no:cacheprovider tests/kernels/gpu"
timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider tests/kernels/gpu 2>&1 | tail -4
P="benchmarks/gpu_pipeline_profile.py --variants service --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2"
for round in 1 2; do
  for code in new base; do
    src=$PWD/src; [ $code = base ] && src=$PWD/.prof/base/src
    echo "## round $round, $code: python3 $P"
    PYTHONPATH=/tmp/site:$src:$PWD timeout 260 python3 $P 2>&1 \
      | awk '/img\/s; nodes|process CPU|% CPU  (MainThread|torchweir)/ {print; next}'
  done
done
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --split --variants threads,service --rounds 1 --seconds 5 --warmup 2"
echo "# $C"
timeout 150 $C 2>&1 | grep -E "^round|^  decode batch|Error"
