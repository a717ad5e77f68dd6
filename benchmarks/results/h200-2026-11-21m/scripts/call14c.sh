#!/usr/bin/env bash
# session 14, call 3: decode beside graphs of tiny kernels (launch cost only) and beside
# ResNet-50 graphs, with the GPU's clocks and power sampled every 100 ms
set -u
nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm,clocks.max.video --format=csv
start=$SECONDS
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.video,clocks.mem,power.draw,utilization.gpu,clocks_throttle_reasons.active --format=csv -lms 100 > $OUT/clocks14.csv 2>&1 &
S=$!
B="python3 benchmarks/nvjpeg_decoders.py --decoders torchvision,nvjpeg:serialized --threads 2 --batch 64 --seconds 3"
for beside in "--beside tiny --beside-threads 2" \
              "--beside tiny --beside-threads 2 --beside-rate 150" \
              "--beside model --model-batch 128" \
              "--beside model --model-batch 64" ; do
  i=$((${i:-0} + 1)); tag=${i}_$(echo "$beside" | awk '{print $2}')
  echo "# [$((SECONDS - start)) s] $B $beside --json \$OUT/beside_$tag.json"
  date +%H:%M:%S.%N
  timeout 120 $B $beside --json $OUT/beside_$tag.json > $OUT/beside_$tag.log 2>&1
  grep -v -E "Warning|warn" $OUT/beside_$tag.log | tail -4
  date +%H:%M:%S.%N
done
kill $S
echo "# done at $((SECONDS - start)) s"
