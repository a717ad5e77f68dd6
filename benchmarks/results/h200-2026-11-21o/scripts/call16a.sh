#!/usr/bin/env bash
# session 16, call 1: the Triton resize. GPU tests; decode+resize (fused, torchvision's
# nvJPEG) alone and beside a replaying ResNet-50 graph, torch's resize against Triton's;
# then the joint ceiling (plain threads) and the service, each with either resize.
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import triton, torch; print('triton', triton.__version__, 'torch', torch.__version__)"
C="python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts= --timeout 200 -x tests/kernels/models/test_torch_model_gpu.py tests/kernels/gpu tests/actors/test_cuda.py"
echo "# [$((SECONDS - start)) s] $C > \$OUT/gpu_tests.log"
timeout 240 $C > $OUT/gpu_tests.log 2>&1
echo "rc=$?"
tail -15 $OUT/gpu_tests.log
C="python3 benchmarks/nvjpeg_decoders.py --decoders torchvision --threads 2 --fused --resize-kernels torch,triton,torch,triton --seconds 3 --json $OUT/resize_beside.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/resize_beside.log"
timeout 120 $C > $OUT/resize_beside.log 2>&1
grep -v -E "Warning" $OUT/resize_beside.log | tail -8
echo "# done at $((SECONDS - start)) s"
