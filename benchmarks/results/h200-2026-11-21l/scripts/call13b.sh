#!/usr/bin/env bash
# session 13, call 2: torchvision's nvJPEG path (one process-wide lock, its own stream) against
# our binding (no lock, the instance's stream, optionally high priority), compiled model,
# interleaved in one process
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
start=$SECONDS
N=service+decode.decoder=nvjpeg
V=service,$N,$N+decode.stream_priority=high,$N+decode.instance_num=3,service,$N,$N+decode.stream_priority=high,$N+decode.instance_num=3
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2"
echo "# [$((SECONDS - start)) s] $C --variants $V --json \$OUT/decoders13.json > \$OUT/decoders13.log"
timeout 560 $C --variants $V --json $OUT/decoders13.json > $OUT/decoders13.log 2>&1
grep -E "img/s|Error|error" $OUT/decoders13.log | grep -v -E "Warning|triton_|autotun|select_algorithm" | cut -c1-600
echo "# done at $((SECONDS - start)) s"
