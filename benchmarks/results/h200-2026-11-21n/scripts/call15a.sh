#!/usr/bin/env bash
# session 15, call 1: the GPU tests (spill pools, mixed host/GPU model batches, and the rest)
set -u
export TORCHWEIR_CACHE=/tmp/twcache
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
C="python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts= --timeout 200 -x tests/kernels/models/test_torch_model_gpu.py tests/kernels/gpu tests/actors/test_cuda.py"
echo "# $C"
date +%H:%M:%S
timeout 420 $C > $OUT/gpu_tests.log 2>&1
echo "rc=$?"
tail -25 $OUT/gpu_tests.log
date +%H:%M:%S
