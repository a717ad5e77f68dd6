#!/usr/bin/env bash
# session 17, call 2: the two-node service against one merged node per instance
# (S[decode+resize, model]: no hand-off through the event loop between the stages),
# 2, 3 and 4 instances, interleaved, two rounds, at 256 clients
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
F='W1|E1|Warning|warn|triton_|autotun|AUTOTUNE|select_algorithm|Autotune|strides|dtypes|SingleProcess|storage|^  [a-z_]+ [0-9.]+ ms'
V=service,merged,merged+decode.instance_num=3,merged+decode.instance_num=4
C="python3 benchmarks/gpu_pipeline_profile.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --seconds 5 --warmup 2 --variants $V,$V --json $OUT/merged.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/merged.log"
echo "# $C" > $OUT/merged.log
timeout 570 $C >> $OUT/merged.log 2>&1
grep -v -E "$F" $OUT/merged.log | grep -E "img/s|CPU  torchweir|CPU  MainThread|loop" | cut -c1-400 | head -60
echo "# done at $((SECONDS - start)) s"
