#!/usr/bin/env bash
# session 16, call 2: the GPU tests after the fix (the binding's BGR planes are resized
# without a second flip), then call16b.sh (joint ceiling and service, either resize)
set -u
export TORCHWEIR_CACHE=/tmp/twcache
C="python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts= --timeout 200 -x tests/kernels/models/test_torch_model_gpu.py tests/kernels/gpu tests/actors/test_cuda.py"
echo "# $C > \$OUT/gpu_tests.log"
timeout 200 $C > $OUT/gpu_tests.log 2>&1
rc=$?
echo "rc=$rc"
tail -6 $OUT/gpu_tests.log
[ $rc = 0 ] || exit 1
bash .prof/call16b.sh
