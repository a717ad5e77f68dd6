"""Benchmarks of torchweir graphs against baselines: load, statistics and reports.

>>> import torchweir as tw
>>> from torchweir import bench
>>> @tw.kernel(max=8)
... def double(batch):
...     return [x * 2 for x in batch]
>>> g = tw.Graph(); _ = g.node("double", double)
>>> result = bench.run(bench.RuntimeTarget(g), list(range(100)), clients=[4],
...                    requests=200, warmup=0, progress=False)
>>> result.points[0].stats.requests, result.points[0].stats.errors
(200, 0)
"""

from torchweir.bench.api import run as run
from torchweir.bench.http import HttpTarget as HttpTarget
from torchweir.bench.inputs import load_images as load_images
from torchweir.bench.inputs import synthetic as synthetic
from torchweir.bench.report import from_json as from_json
from torchweir.bench.report import plot as plot
from torchweir.bench.report import table as table
from torchweir.bench.report import to_json as to_json
from torchweir.bench.result import BenchResult as BenchResult
from torchweir.bench.result import Point as Point
from torchweir.bench.stats import PointStats as PointStats
from torchweir.bench.targets import RuntimeTarget as RuntimeTarget
from torchweir.bench.targets import Target as Target
from torchweir.bench.targets import ThreadTarget as ThreadTarget

__all__ = [
    "BenchResult",
    "HttpTarget",
    "Point",
    "PointStats",
    "RuntimeTarget",
    "Target",
    "ThreadTarget",
    "from_json",
    "load_images",
    "plot",
    "run",
    "synthetic",
    "table",
    "to_json",
]
