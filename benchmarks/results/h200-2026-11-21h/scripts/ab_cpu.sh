#!/usr/bin/env bash
# CPU-decode service: working tree (new) against .prof/base/src (base), interleaved processes.
set -u
V=${V:-service}
ROUNDS=${ROUNDS:-2}
for round in $(seq $ROUNDS); do
  for code in new base; do
    src=$PWD/src; [ $code = base ] && src=$PWD/.prof/base/src
    echo "## round $round, $code"
    PYTHONPATH=/tmp/site:$src:$PWD timeout 200 python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants $V --seconds ${SECS:-4} --warmup ${WARM:-2} ${EXTRA:-} 2>&1 \
      | awk '/img\/s; nodes|process CPU|% CPU  (MainThread|torchweir)/ {print; next} /stacks of MainThread/ {n=7} n>0 {print; n--}'
  done
done
