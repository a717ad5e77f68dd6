#!/usr/bin/env bash
# session 15, call 5: does a model instance that takes its next batch while the GPU runs the
# last one (prefetch=1) hide the gather of host rows? model-only fed host tensors, and the
# service spilling to 6 CPU decoders in batches of 2
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2"
V1="model-only,model-only+resnet50.prefetch=1,model-only,model-only+resnet50.prefetch=1"
echo "# [$((SECONDS - start)) s] $C --variants $V1 > \$OUT/model15e.log"
timeout 330 $C --variants $V1 > $OUT/model15e.log 2>&1
grep -E "img/s|Error" $OUT/model15e.log | cut -c1-400
SET="--set decode.spill=S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor] --set decode.spill_executor=process --set decode.spill_color=rgb --set decode.spill_max=2 --set decode.spill_instance_num=6"
V2="service,service+resnet50.prefetch=1"
echo "# [$((SECONDS - start)) s] $C --variants $V2 $SET > \$OUT/spill15e.log"
timeout 200 $C --variants $V2 $SET > $OUT/spill15e.log 2>&1
grep -E "img/s|process CPU|Error" $OUT/spill15e.log | cut -c1-400
echo "# done at $((SECONDS - start)) s"
