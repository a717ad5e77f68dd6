"""What the graph build works out from the graph's shape."""

from __future__ import annotations

import torchweir as tw
from torchweir.runtime.build import data_read_after


def test_only_default_hops_and_leaves_leave_a_nodes_data_unread() -> None:
    g = tw.Graph()
    g.node("a", "Identity") >> g.node("b", "Identity")
    assert not data_read_after(g.spec(), "a")  # b swaps result into data
    assert not data_read_after(g.spec(), "b")  # a leaf: the caller gets result


def test_filters_maps_joins_and_later_maps_may_read_a_nodes_data() -> None:
    g = tw.Graph()
    g.node("a", "Identity") >> g.node("b", "Identity", filter="Run")  # runs on a's data
    assert data_read_after(g.spec(), "a")

    g = tw.Graph()
    a, b, c = g.node("a", "Identity"), g.node("b", "Identity"), g.node("c", "Identity")
    d = g.node("d", "Identity", map="b[result:data],c[data:other]")
    a >> b >> d
    a >> c >> d
    spec = g.spec()
    assert not data_read_after(spec, "a")
    assert data_read_after(spec, "b")  # d maps from it (and joins)
    assert data_read_after(spec, "c")

    g = tw.Graph()
    (
        g.node("a", "Identity")
        >> g.node("b", "Identity")
        >> g.node("c", "Identity", map="a[data:data]")
    )
    assert data_read_after(g.spec(), "a")  # c reads a's output two hops on


def chain_then(child: tw.Graph, **child_settings: object) -> tw.Graph:
    """A fusable CPU chain (``ResizeMat, cvtColorMat, Mat2Tensor``) feeding ``child``."""
    child.node(
        "pre", "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]", resize_h=8, resize_w=6, color="rgb"
    ) >> child.node("after", "Identity", **child_settings)
    return child


def test_a_chain_is_fused_only_where_nothing_reads_the_data_it_leaves() -> None:
    from torchweir.kernels.compose import Sequential
    from torchweir.kernels.cpu.fused import ResizeCvtColorTensor
    from torchweir.runtime.build import built_kernel, node_kernel

    spec = chain_then(tw.Graph()).spec().node("pre")
    for kernel in (node_kernel(spec)[0], built_kernel(spec)):
        assert isinstance(kernel, Sequential)
        assert ResizeCvtColorTensor in [type(k) for _, k in kernel.steps]
    for kernel in (node_kernel(spec, fuse=False)[0], built_kernel(spec, fuse=False)):
        assert isinstance(kernel, Sequential)
        assert ResizeCvtColorTensor not in [type(k) for _, k in kernel.steps]
        assert len(kernel.steps) == 4


def test_a_node_reading_a_chains_data_sees_what_the_unfused_chain_leaves() -> None:
    """The chain leaves its last step's input in ``data``: the resized RGB image, not the
    decoded one a fused step would leave."""
    import asyncio

    import numpy as np

    from torchweir.data import sample_image_bytes

    g = chain_then(tw.Graph(), map="pre[data:data]")

    async def main() -> object:
        async with tw.Runtime(g) as rt:
            return await rt.submit(sample_image_bytes()[0])

    out = asyncio.run(main())
    assert isinstance(out, np.ndarray)
    assert out.shape == (8, 6, 3)
