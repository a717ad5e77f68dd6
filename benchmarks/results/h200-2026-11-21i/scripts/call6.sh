#!/usr/bin/env bash
set -u
L=$OUT/decode_frombuffer_ab.log
echo "# python3 -m pytest -m gpu -q -p no:cacheprovider tests/kernels/gpu" | tee $L
timeout 90 python3 -m pytest -m gpu -q -p no:cacheprovider tests/kernels/gpu 2>&1 | tail -3 | tee -a $L
P="benchmarks/gpu_pipeline_profile.py --variants decode-only --seconds 4 --warmup 2"
for round in 1 2; do
  for code in new base; do
    src=$PWD/src; [ $code = base ] && src=$PWD/.prof/base/src
    echo "## round $round, $code: python3 $P" | tee -a $L
    PYTHONPATH=/tmp/site:$src:$PWD timeout 60 python3 $P 2>&1 \
      | awk '/img\/s; nodes|process CPU|% CPU  (MainThread|torchweir)/ {print; next}' | tee -a $L
  done
done
