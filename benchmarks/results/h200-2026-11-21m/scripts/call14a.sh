#!/usr/bin/env bash
# session 14, call 1: does a third or fourth decode instance raise the ceiling of the two
# stages together (plain threads), and the service with enough clients to fill them?
# Interleaved in one process; then keep the compile cache for later calls.
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
V=threads,threads+decode.instance_num=3,threads+decode.instance_num=4,service,service+decode.instance_num=3+runtime.clients=384,service+decode.instance_num=3+runtime.clients=512
J="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --rounds 2 --seconds 4 --warmup 2"
echo "# [$((SECONDS - start)) s] $J --variants $V --json \$OUT/joint14.json > \$OUT/joint14.log"
timeout 530 $J --variants $V --json $OUT/joint14.json > $OUT/joint14.log 2>&1
grep -E "^round|Error|error" $OUT/joint14.log | grep -v -E "Warning|triton_|autotun|select_algorithm" | cut -c1-900
ls -la /tmp/twcache/compile
mkdir -p $OUT/twcache
for f in /tmp/twcache/compile/*; do
  if [ $(stat -c %s "$f") -lt 16000000 ]; then cp "$f" $OUT/twcache/; fi
done
echo "# done at $((SECONDS - start)) s"
