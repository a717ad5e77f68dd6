#!/usr/bin/env bash
# session 17, call 1: how decode's batch time grows with its size (fused decode+resize,
# torchvision's path, 1 and 2 threads, batches of 32/64/128, alone and beside a replaying
# ResNet-50), then decode batches of 96 and 128 in plain threads and in the service
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
F='W1|E1|Warning|warn|triton_|autotun|AUTOTUNE|select_algorithm|Autotune|strides|dtypes|SingleProcess|storage|^  [a-z_]+ [0-9.]+ ms'
for b in 32 64 128; do
C="python3 benchmarks/nvjpeg_decoders.py --fused --decoders torchvision --threads 1,2 --batch $b --seconds 2 --json $OUT/batch$b.json"
echo "# [$((SECONDS - start)) s] $C >> \$OUT/batch_sizes.log"
echo "# $C" >> $OUT/batch_sizes.log
timeout 120 $C >> $OUT/batch_sizes.log 2>&1
done
grep -v -E "$F" $OUT/batch_sizes.log | cut -c1-300
V=threads,threads+decode.max=128+decode.max_batch=128,service,service+decode.max=128+decode.max_batch=128,service+decode.max=96+decode.max_batch=96
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --rounds 2 --seconds 5 --variants $V --json $OUT/joint_batch.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/joint_batch.log"
echo "# $C" > $OUT/joint_batch.log
timeout 510 $C >> $OUT/joint_batch.log 2>&1
grep -v -E "$F" $OUT/joint_batch.log | cut -c1-500 | tail -30
echo "# done at $((SECONDS - start)) s"
