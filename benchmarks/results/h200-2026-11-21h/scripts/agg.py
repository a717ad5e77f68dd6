"""Sum py-spy's raw stacks (``py-spy record -f raw``) by frame: inclusive and self shares."""

import collections
import sys
from pathlib import Path

inclusive: collections.Counter[str] = collections.Counter()
own: collections.Counter[str] = collections.Counter()
total = 0
for line in Path(sys.argv[1]).read_text().splitlines():
    if not line.strip():
        continue
    stack, _, count = line.rpartition(" ")
    n = int(count)
    total += n
    frames = [
        f.split(" (")[0] + " " + (f.split("/")[-1].rstrip(")") if "/" in f else "")
        for f in stack.split(";")
    ]
    for frame in set(frames):
        inclusive[frame] += n
    own[frames[-1]] += n
print("total GIL samples", total)  # every sample, idle ones included with --idle
print("-- inclusive --")
for frame, n in inclusive.most_common(45):
    print(f"{100 * n / total:5.1f}% {frame}")
print("-- self --")
for frame, n in own.most_common(25):
    print(f"{100 * n / total:5.1f}% {frame}")
