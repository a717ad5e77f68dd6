#!/usr/bin/env bash
# session 16, call 4: more interleaved rounds of call 2 (plain threads and the service,
# torch's resize against Triton's), on the same machine as call 3
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --rounds 3 --seconds 5 --variants threads+decode.resize_kernel=torch,threads+decode.resize_kernel=triton,service+decode.resize_kernel=torch,service+decode.resize_kernel=triton --json $OUT/joint2.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/joint2.log"
timeout 500 $C > $OUT/joint2.log 2>&1
grep -E "^round" $OUT/joint2.log | cut -c1-400
echo "# done at $((SECONDS - start)) s"
