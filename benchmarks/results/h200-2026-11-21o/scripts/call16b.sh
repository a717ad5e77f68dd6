#!/usr/bin/env bash
# session 16, call 2: the joint ceiling (the service's kernels in plain threads) and the
# service through the runtime, each with torch's resize and Triton's, two rounds
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --rounds 2 --seconds 5 --variants threads+decode.resize_kernel=torch,threads+decode.resize_kernel=triton,service+decode.resize_kernel=torch,service+decode.resize_kernel=triton --json $OUT/joint.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/joint.log"
timeout 560 $C > $OUT/joint.log 2>&1
grep -v -E "W1|E1|Warning|triton_|autotun|AUTOTUNE|select_algorithm|Autotune|strides|dtypes|SingleProcess" $OUT/joint.log | cut -c1-400 | tail -30
echo "# done at $((SECONDS - start)) s"
