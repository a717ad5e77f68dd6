#!/usr/bin/env bash
# The CPU-decode service under load, watched from outside: per-process CPU (top) and a
# child's and the parent's Python stacks (py-spy, idle frames included).
set -u
V=${V:-decode-only,service}
python3 -c "import os; print('cpu_count', os.cpu_count(), 'affinity', len(os.sched_getaffinity(0)))"
python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants $V --seconds ${SECS:-30} --warmup 2 > $OUT/svc.log 2>&1 &
P=$!
phase=0
for v in ${V//,/ }; do
  # wait for this variant's children, then for its load
  until [ "$(pgrep -fc 'child_main')" -ge 14 ] || ! kill -0 $P 2>/dev/null; do sleep 1; done
  sleep ${SETTLE:-25}
  echo "=== $v: $(pgrep -fc child_main) children; $(date +%T)"
  top -b -n 2 -d 3 -w 200 | awk "/^top -/{k++} k==2" | head -24
  c=$(pgrep -f child_main | head -1)
  py-spy record -p $c -d 5 -r 200 --idle -f raw -o $OUT/child_$v.txt --nonblocking >/dev/null 2>&1
  py-spy record -p $P -d 5 -r 200 --idle -f raw -o $OUT/parent_$v.txt --nonblocking >/dev/null 2>&1
  python3 .prof/agg.py $OUT/child_$v.txt | head -30
  # wait until this variant is over
  until [ "$(pgrep -fc 'child_main')" -eq 0 ] || ! kill -0 $P 2>/dev/null; do sleep 1; done
done
wait $P
grep -A3 "img/s; nodes" $OUT/svc.log
