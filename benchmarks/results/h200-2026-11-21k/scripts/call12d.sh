#!/usr/bin/env bash
# session 12: where a decode child's time goes (CPU variant, decode node alone, 14 children)
set -u
C="python3 benchmarks/gpu_pipeline_profile.py --decode cpu --variants decode-only --seconds 14 --warmup 2 --json $OUT/child_profile_run.json"
echo "# $C"
$C > $OUT/child_profile_run.log 2>&1 &
main=$!
for i in $(seq 120); do
  n=$(pgrep -P $main | wc -l)
  [ "$n" -ge 14 ] && break
  sleep 0.5
done
echo "# children: $n after $((i / 2)) s"
sleep 7
kids=$(pgrep -P $main | head -14)
cpu() { for p in $kids; do awk '{print $14+$15}' /proc/$p/stat; done | paste -sd' '; }
a=$(cpu); sleep 3; b=$(cpu)
echo "# children's CPU over 3 s, % of a core each (CLK_TCK $(getconf CLK_TCK)):"
python3 -c "import sys; a=list(map(int,'$a'.split())); b=list(map(int,'$b'.split())); print([round((y-x)/3/$(getconf CLK_TCK)*100) for x,y in zip(a,b)])"
k=0
for p in $(echo $kids | tr ' ' '\n' | head -3); do
  py-spy record --pid $p --duration 4 --rate 200 --format raw --nonblocking -o $OUT/child_$k.txt > /dev/null 2>&1 &
  k=$((k+1))
done
wait
cat $OUT/child_profile_run.log | grep -v "stacks of\|^     \|^    [0-9 ]*\.[0-9] % CPU" | head -5
for f in $OUT/child_*.txt; do
  echo "# $f: top leaf frames"
  python3 - "$f" <<'PY'
import sys, collections
leaf = collections.Counter(); total = 0
for line in open(sys.argv[1]):
    stack, _, n = line.rpartition(" ")
    n = int(n); total += n
    frames = stack.split(";")
    leaf[";".join(f.split(" (")[0] for f in frames[-2:])] += n
for k, v in leaf.most_common(12):
    print(f"  {100*v/total:5.1f} %  {k}")
PY
done
