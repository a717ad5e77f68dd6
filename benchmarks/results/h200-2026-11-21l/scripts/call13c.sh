#!/usr/bin/env bash
# session 13, call 3: the decode GPU tests; then torchvision's path fed from a fresh host
# buffer per batch (the default) against a reused one and a reused pinned one, compiled
# model, interleaved in one process
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
echo "# timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts= --timeout 100 tests/kernels/gpu"
timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --timeout 100 tests/kernels/gpu 2>&1 | tail -6
R=service+decode.staging=reused
P=service+decode.staging=pinned
V=service,$R,$P,service,$R,$P,service,$R,$P
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2"
left=$((580 - (SECONDS - start)))
echo "# [$((SECONDS - start)) s] $C --variants $V --json \$OUT/staging13.json > \$OUT/staging13.log"
timeout $left $C --variants $V --json $OUT/staging13.json > $OUT/staging13.log 2>&1
grep -E "img/s|Error|error" $OUT/staging13.log | grep -v -E "Warning|triton_|autotun|select_algorithm" | cut -c1-400
echo "# done at $((SECONDS - start)) s"
