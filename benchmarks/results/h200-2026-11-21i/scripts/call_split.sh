#!/usr/bin/env bash
set -u
export TORCHWEIR_CACHE=$PWD/.prof/cache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --split --variants threads,threads+burner=0.25,service --rounds 2 --seconds 5 --warmup 2 --json $OUT/joint_split.json"
echo "# $C"
timeout 500 $C 2>&1 | grep -E "^round|^  decode batch|Error|error" | grep -v Warning
mkdir -p $OUT/cache && cp -r .prof/cache/compile $OUT/cache/ 2>/dev/null; du -sh .prof/cache
