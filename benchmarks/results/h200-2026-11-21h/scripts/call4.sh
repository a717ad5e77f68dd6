#!/usr/bin/env bash
set -u
echo "## python3 .prof/ceiling.py 14 16  (gpu_resnet50.cpu_decode_ceiling_processes, 8 s each)"
timeout 90 python3 .prof/ceiling.py 14 16 2>&1 | tail -3
echo "## python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants decode-only,service,service --seconds 8 --warmup 4"
timeout 300 python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants decode-only,service,service --seconds 8 --warmup 4 2>&1 | awk '/img\/s; nodes|process CPU|% CPU  (MainThread|torchweir)/ {print; next} /stacks of MainThread/ {n=7} n>0 {print; n--}'
