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
