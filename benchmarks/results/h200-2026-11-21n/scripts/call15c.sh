#!/usr/bin/env bash
# session 15, call 3: where the spilling service loses: per-node and per-thread profile of the
# service spilling to 4 CPU decoders in processes (--set applies the spill keys: the spill
# backend's commas cannot go into --variants), then model-only fed host tensors
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
SET="--set decode.spill=S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor] --set decode.spill_instance_num=4 --set decode.spill_executor=process --set decode.spill_max=8 --set decode.spill_prefetch=1 --set decode.spill_color=rgb"
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2"
echo "# [$((SECONDS - start)) s] $C --variants service,service $SET --json \$OUT/spill15.json > \$OUT/spill15.log"
timeout 250 $C --variants service,service $SET --json $OUT/spill15.json > $OUT/spill15.log 2>&1
grep -v -E "Warning|triton_|autotun|AUTOTUNE|select_algorithm|Autotune|strides|dtypes|SingleProcess" $OUT/spill15.log | cut -c1-300 | tail -120
echo "# [$((SECONDS - start)) s] $C --variants model-only > \$OUT/model15.log"
timeout 200 $C --variants model-only > $OUT/model15.log 2>&1
grep -E "img/s" $OUT/model15.log | cut -c1-400
echo "# done at $((SECONDS - start)) s"
