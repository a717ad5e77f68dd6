#!/usr/bin/env bash
# session 13, call 4: the decode GPU tests; then the fused decode through our nvJPEG binding,
# which now lays each size out as one block and resizes it where it lies, against
# torchvision's path; compiled model, interleaved in one process
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
echo "# timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts= --timeout 100 tests/kernels/gpu"
timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts="" --timeout 100 tests/kernels/gpu 2>&1 | tail -6
N=service+decode.decoder=nvjpeg
H=$N+decode.stream_priority=high
V=service,$N,$H,service,$N,$H,service,$N,$H
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2"
left=$((580 - (SECONDS - start)))
echo "# [$((SECONDS - start)) s] $C --variants $V --json \$OUT/binding13.json > \$OUT/binding13.log"
timeout $left $C --variants $V --json $OUT/binding13.json > $OUT/binding13.log 2>&1
grep -E "img/s|Error|error" $OUT/binding13.log | grep -v -E "Warning|triton_|autotun|select_algorithm" | cut -c1-400
echo "# done at $((SECONDS - start)) s"
