#!/usr/bin/env bash
# A/B two versions of torchweir on the GPU machine: the working tree ("new") against the
# src/ of another commit ("base"), in alternating processes, two rounds, so that both
# versions share the machine's state (machines of one kind differ by up to 2x).
#   git archive <commit> src | tar -x -C .prof/base    # once, before the device call
#   V=service,service+runtime.clients=512 bash benchmarks/ab_code.sh
# V: gpu_pipeline_profile.py variants; EXTRA: more of its options; BASE: the base src/.
set -u
base=${BASE:-$PWD/.prof/base/src}
[ -d "$base/torchweir" ] || { echo "no torchweir under $base (see the comment above)" >&2; exit 2; }
compiled="--model-compile max-autotune-no-cudagraphs --compile-dynamic"
for round in 1 2; do
  for code in new base; do
    src=$PWD/src
    [ "$code" = base ] && src=$base
    echo "## round $round, $code"
    # shellcheck disable=SC2086  # EXTRA and compiled hold several options
    PYTHONPATH=/tmp/site:$src:$PWD timeout 300 python3 benchmarks/gpu_pipeline_profile.py \
      --variants "${V:-service}" --seconds 4 --warmup 2 $compiled ${EXTRA:-} 2>&1 \
      | grep -A1 "img/s; nodes"
  done
done
