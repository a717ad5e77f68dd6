#!/usr/bin/env bash
# session 17, call 3: decode's GPU work at a high stream priority, so that its small kernels
# need not queue behind the compiled model's: our nvJPEG binding (which decodes on the
# instance's stream) at normal and high priority, with its own or one serialized handle,
# against torchvision's path (whose nvJPEG kernels run on torchvision's own stream), in
# plain threads and in the service, two rounds
set -u
export TORCHWEIR_CACHE=/tmp/twcache
start=$SECONDS
F='W1|E1|Warning|warn|triton_|autotun|AUTOTUNE|select_algorithm|Autotune|strides|dtypes|SingleProcess|storage|^  [a-z_]+ [0-9.]+ ms'
B=decode.decoder=nvjpeg
V=threads,threads+$B,threads+$B+decode.stream_priority=high,threads+$B+decode.stream_priority=high+decode.nvjpeg_handle=serialized,threads+decode.stream_priority=high,service,service+$B+decode.stream_priority=high
C="python3 benchmarks/gpu_joint_ceiling.py --model-compile max-autotune-no-cudagraphs --compile-dynamic --rounds 2 --seconds 5 --variants $V --json $OUT/priority.json"
echo "# [$((SECONDS - start)) s] $C > \$OUT/priority.log"
echo "# $C" > $OUT/priority.log
timeout 570 $C >> $OUT/priority.log 2>&1
grep -v -E "$F" $OUT/priority.log | grep "^round" | cut -c1-500
echo "# done at $((SECONDS - start)) s"
