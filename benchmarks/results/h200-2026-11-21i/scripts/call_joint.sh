#!/usr/bin/env bash
set -u
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --rounds 2 --seconds 5 --warmup 2 --json $OUT/joint.json"
echo "# $C"
timeout 480 $C 2>&1 | grep -v Warning | tail -20
