#!/usr/bin/env bash
# session 11, call 1: GPU tests, then base (HEAD) against the TorchScript batch ops, eager CUDA-graph model
set -u
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__)"
echo "# pytest -m gpu tests/kernels/gpu -q"
timeout 200 python3 -m pytest -m gpu tests/kernels/gpu -q -p no:cacheprovider 2>&1 | tail -5 | tee $OUT/gpu_tests.log
C="python3 benchmarks/gpu_joint_ceiling.py --split --variants threads,service --rounds 1 --seconds 5 --warmup 2"
for round in 1 2; do
  for tree in base new; do
    if [ $tree = base ]; then P=/tmp/site:$PWD/.prof/base/src:$PWD; else P=/tmp/site:$PWD/src:$PWD; fi
    echo "# [$tree round $round] $C --json $OUT/split_${tree}_$round.json"
    PYTHONPATH=$P timeout 150 $C --json $OUT/split_${tree}_$round.json 2>&1 | grep -E "^round|^  decode batch|img/s|Error|error" | grep -v Warning | tee -a $OUT/split_$tree.log
  done
done
