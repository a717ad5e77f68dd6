#!/usr/bin/env bash
# session 16, call 6: the GPU tests on the final kernels (c6cc6c1), then where a request's
# time goes in the service at 256 clients: each batch's crossings between the event loop
# and the instance threads (gpu_pipeline_profile.py --hops), two rounds
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
C="python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts= --timeout 200 -x tests/kernels/models/test_torch_model_gpu.py tests/kernels/gpu tests/actors/test_cuda.py"
echo "# [$((SECONDS - start)) s] $C > \$OUT/gpu_tests.log"
timeout 200 $C > $OUT/gpu_tests.log 2>&1
echo "rc=$?"
tail -3 $OUT/gpu_tests.log
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2 --hops --variants service,service --json $OUT/hops.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/hops.log"
timeout 380 $C > $OUT/hops.log 2>&1
grep -v -E "W1|E1|Warning|warn|triton_|autotun|AUTOTUNE|select_algorithm|Autotune|strides|dtypes|SingleProcess|storage|^  [a-z]+ [0-9.]+ ms" $OUT/hops.log | cut -c1-600 | head -80
echo "# done at $((SECONDS - start)) s"
