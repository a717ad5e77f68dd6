"""CPU decode+resize+cvtColor in N separate processes (gpu_resnet50's ceiling), N = argv."""

import sys

sys.path.insert(0, "benchmarks")
from gpu_resnet50 import cpu_decode_ceiling_processes, imagenet_like
from torchweir.data import sample_image_bytes

if __name__ == "__main__":
    images = imagenet_like(sample_image_bytes(), 500)
    for n in map(int, sys.argv[1:]):
        rate = cpu_decode_ceiling_processes(images, n, 8.0)
        print(f"{n} processes: {rate:,.0f} img/s", flush=True)
