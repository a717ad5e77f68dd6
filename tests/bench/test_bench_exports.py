from __future__ import annotations

import types

import torchweir.bench as bench

DOCUMENTED = {
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
}


def test_bench_exports_exactly_the_documented_names() -> None:
    assert set(bench.__all__) == DOCUMENTED
    public = {
        name
        for name, value in vars(bench).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == DOCUMENTED
