#!/usr/bin/env bash
set -u
echo "## pytest -m gpu tests/kernels/models tests/actors"
timeout 300 python3 -m pytest -q -m gpu tests/kernels/models tests/actors -p no:cacheprovider 2>&1 | tail -4
echo "## CPU decode+resize+cvtColor ceiling in processes (preprocess_reference), 8 s"
python3 - <<'PY'
import sys; sys.path.insert(0, "benchmarks")
from gpu_resnet50 import cpu_decode_ceiling_processes, imagenet_like
from torchweir.data import sample_image_bytes
images = imagenet_like(sample_image_bytes(), 500)
for n in (14, 16):
    print(f"{n} processes: {cpu_decode_ceiling_processes(images, n, 8.0):,.0f} img/s", flush=True)
PY
echo "## python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants decode-only,service,service --seconds 8 --warmup 4"
python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants decode-only,service,service --seconds 8 --warmup 4 2>&1 | awk '/img\/s; nodes|process CPU|% CPU  (MainThread|torchweir)/ {print; next} /stacks of MainThread/ {n=7} n>0 {print; n--}'
