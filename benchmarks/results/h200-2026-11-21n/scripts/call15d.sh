#!/usr/bin/env bash
# session 15, call 4: spill pools that hold few requests: batches of 1, 2 or 4 without
# prefetch, 6 to 10 CPU decoders in processes (one process per setting; --set: the spill
# backend's commas cannot go into --variants)
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2 --variants service"
BASE="--set decode.spill=S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor] --set decode.spill_executor=process --set decode.spill_color=rgb"
k=0
for s in "2 6" "2 10" "1 8" "4 8"; do
  set -- $s
  k=$((k+1))
  SET="$BASE --set decode.spill_max=$1 --set decode.spill_instance_num=$2"
  echo "# [$((SECONDS - start)) s] $C $SET > \$OUT/spill15d_$k.log"
  timeout 120 $C $SET > $OUT/spill15d_$k.log 2>&1
  grep -E "img/s|process CPU|% CPU" $OUT/spill15d_$k.log | cut -c1-400 | head -8
done
echo "# done at $((SECONDS - start)) s"
