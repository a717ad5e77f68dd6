#!/usr/bin/env bash
set -u
echo "## python3 .prof/ceiling.py 14"
timeout 45 python3 .prof/ceiling.py 14 2>&1 | grep processes
echo "## python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants decode-only,service --seconds 6 --warmup 3"
timeout 110 python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants decode-only,service --seconds 6 --warmup 3 2>&1 | awk '/img\/s; nodes|process CPU|% CPU  (MainThread|torchweir)/ {print; next}'
echo "## python3 .prof/ceiling.py 14"
timeout 45 python3 .prof/ceiling.py 14 2>&1 | grep processes
