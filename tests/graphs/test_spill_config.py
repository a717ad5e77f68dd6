"""A node's spill pool as configured: keys, defaults, overrides and errors."""

from __future__ import annotations

import pytest

import torchweir as tw
from torchweir.graphs.spill import spill_spec
from torchweir.graphs.toml import loads_toml

GPU_DECODE_SPILLING_TO_CPU = """
[decode]
backend = "S[DecodeTensor,ResizeTensor]"
instance_num = 2
max = 64
batching_timeout = 1
resize_h = 224
resize_w = 224
spill = "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]"
spill_instance_num = 8
spill_executor = "process"
spill_max = "8"
spill_color = "rgb"
next = "model"

[model]
backend = "Identity"
"""


def test_the_pool_shares_the_nodes_params_and_overrides_its_own() -> None:
    graph = loads_toml(GPU_DECODE_SPILLING_TO_CPU)
    node = graph.node("decode")
    pool = spill_spec(node)
    assert pool is not None
    assert pool.name == "decode"
    assert pool.backend == "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]"
    assert (pool.instance_num, pool.max, pool.batching_timeout) == (8, 8, 1.0)
    assert pool.next == ()
    assert pool.max_queue == node.max_queue
    assert pool.params == {"resize_h": 224, "resize_w": 224, "executor": "process", "color": "rgb"}
    assert loads_toml(graph.to_toml()) == graph  # the keys are node params: they round-trip


def test_a_pool_defaults_to_one_instance_and_its_kernels_batch_size() -> None:
    g = tw.Graph()
    g.node("n", "Identity", instance_num=4, max=32, spill="Identity") >> g.node("plain", "Identity")
    spec = g.spec()
    pool = spill_spec(spec.node("n"))
    assert pool is not None
    assert (pool.instance_num, pool.max) == (1, None)
    assert spill_spec(spec.node("plain")) is None


def test_a_kernel_object_may_be_the_pool_from_python() -> None:
    @tw.kernel(max=4)
    def doubled(batch: list[int]) -> list[int]:
        return [2 * x for x in batch]

    g = tw.Graph()
    g.node("n", "Identity", spill=doubled, spill_instance_num=3)
    pool = spill_spec(g.spec().node("n"))
    assert pool is not None
    assert pool.kernel is doubled
    assert pool.backend == ""
    assert pool.instance_num == 3


@pytest.mark.parametrize(
    ("settings", "key", "message"),
    [
        ({"spill_instance_num": 2}, "spill_instance_num", "spill_instance_num is set but spill"),
        (
            {"spill": "DecodeMatt"},
            "spill",
            "unknown backend 'DecodeMatt'; did you mean 'DecodeMat'",
        ),
        ({"spill": "S[DecodeMat"}, "spill", "DecodeMat"),
        ({"spill": ""}, "spill", "expected a backend expression or a Kernel, got ''"),
        ({"spill": 3}, "spill", "got 3"),
        ({"spill": "Identity", "spill_instance_num": 0}, "spill_instance_num", "got 0"),
        ({"spill": "Identity", "spill_max": "lots"}, "spill_max", "got 'lots'"),
        ({"spill": "Identity", "spill_next": "b"}, "spill_next", "belongs to the whole node"),
        ({"spill": "Identity", "spill_max_queue": 4}, "spill_max_queue", "whole node"),
        ({"spill": "Identity", "spill_backend": "Identity"}, "spill_backend", "spill = ..."),
        ({"spill": "Identity", "spill_spill": "Identity"}, "spill_spill", "no spill pool of its"),
        ({"spill": "Identity", "spill_data": 1}, "spill_data", "request key"),
    ],
)
def test_bad_pools_fail_naming_the_node_and_the_spill_key(
    settings: dict[str, object], key: str, message: str
) -> None:
    g = tw.Graph()
    g.node("decode", "Identity", **settings)
    with pytest.raises(tw.ConfigError, match=message) as caught:
        g.spec()
    assert (caught.value.node, caught.value.key) == ("decode", key)


def test_a_toml_error_in_the_pool_names_the_file() -> None:
    text = '[decode]\nbackend = "Identity"\nspill = "Nope"\n'
    with pytest.raises(tw.ConfigError, match="unknown backend 'Nope'") as caught:
        loads_toml(text, file="graph.toml")
    assert (caught.value.file, caught.value.node, caught.value.key) == (
        "graph.toml",
        "decode",
        "spill",
    )
