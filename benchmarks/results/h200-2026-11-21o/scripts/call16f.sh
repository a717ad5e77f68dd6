#!/usr/bin/env bash
# session 16, call 5: many image sizes per batch (each photo at 8 sizes: up to 64 distinct
# sizes in a batch of 64), torch's resize against Triton's: decode+resize beside a
# replaying model, then plain threads and the service
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
C="python3 benchmarks/nvjpeg_decoders.py --decoders torchvision --threads 2 --fused --resize-kernels torch,triton,torch,triton --seconds 3 --sizes 8 --json $OUT/resize_sizes8.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/resize_sizes8.log"
timeout 120 $C > $OUT/resize_sizes8.log 2>&1
grep -v -E "Warning" $OUT/resize_sizes8.log | tail -6
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --rounds 2 --seconds 5 --sizes 8 --variants threads+decode.resize_kernel=torch,threads+decode.resize_kernel=triton,service+decode.resize_kernel=torch,service+decode.resize_kernel=triton --json $OUT/joint_sizes8.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/joint_sizes8.log"
timeout 450 $C > $OUT/joint_sizes8.log 2>&1
grep -E "^round" $OUT/joint_sizes8.log | cut -c1-400
echo "# done at $((SECONDS - start)) s"
