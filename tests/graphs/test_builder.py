from __future__ import annotations

import pytest

import torchweir as tw
from torchweir.graphs.spec import DEFAULT_MAX_QUEUE, NodeSpec


@tw.kernel(max=4)
def ident(batch: list[object]) -> list[object]:
    return batch


def test_chain_and_fan_out_build_the_expected_spec() -> None:
    g = tw.Graph()
    dec = g.node("decode", "Identity", instance_num="8", resize_h=224, color="rgb")
    net = g.node("model", ident, max=32, batching_timeout=5, instance_num=2)
    left = g.node("left", "Identity")
    right = g.node("right", "Identity")
    assert (dec >> net) is net
    assert (net >> [left, right]) == [left, right]
    spec = g.spec()
    assert spec.names == ("decode", "model", "left", "right")
    assert spec.node("decode") == NodeSpec(
        name="decode",
        backend="Identity",
        next=("model",),
        instance_num=8,
        params={"resize_h": 224, "color": "rgb"},
    )
    model = spec.node("model")
    assert model.kernel is ident
    assert (model.max, model.batching_timeout, model.instance_num) == (32, 5.0, 2)
    assert model.next == ("left", "right")
    assert model.max_queue == DEFAULT_MAX_QUEUE
    assert spec.roots() == ("decode",)
    assert spec.parents()["left"] == ["model"]


def test_join_syntax_connects_every_parent() -> None:
    g = tw.Graph()
    root = g.node("root", "Identity")
    a, b = g.node("a", "Identity"), g.node("b", "Identity")
    c = g.node("c", "Identity", map="a[result:data],b[result:b]")
    root >> [a, b]
    [a, b] >> c
    assert g.spec().parents()["c"] == ["a", "b"]


def test_a_join_needs_a_map() -> None:
    g = tw.Graph()
    root = g.node("root", "Identity")
    a, b, c = (g.node(n, "Identity") for n in "abc")
    root >> [a, b]
    [a, b] >> c
    with pytest.raises(tw.ConfigError, match=r"node 'c', key 'map': has 2 parents \(a, b\)"):
        g.spec()


def test_same_edge_twice_is_one_edge() -> None:
    g = tw.Graph()
    a, b = g.node("a", "Identity"), g.node("b", "Identity")
    a >> b
    a >> b
    assert g.spec().node("a").next == ("b",)


def test_builder_errors_name_the_node_and_the_problem() -> None:
    g = tw.Graph()
    a = g.node("a", "Identity")
    with pytest.raises(tw.ConfigError, match="node 'a': a node with this name already exists"):
        g.node("a", "Identity")
    with pytest.raises(TypeError, match=r"node 'f': kernel must be .* got function \(wrap"):
        g.node("f", lambda batch: batch)  # type: ignore[arg-type]
    with pytest.raises(tw.ConfigError, match="key 'next': draw edges with `a >> b`"):
        g.node("n", "Identity", next="a")
    g.node("bad", "Identity", instance_num="many")
    with pytest.raises(tw.ConfigError, match=r"node 'bad'.*key 'instance_num'.*got 'many'"):
        g.spec()
    other = tw.Graph().node("x", "Identity")
    with pytest.raises(TypeError, match="same Graph"):
        a >> other


def test_cycles_are_rejected_with_the_path() -> None:
    g = tw.Graph()
    a, b, c = (g.node(n, "Identity") for n in "abc")
    a >> b >> c >> a
    with pytest.raises(tw.ConfigError, match="cycle: a -> b -> c -> a"):
        g.spec()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"max": 2, "min": 4}, "expected max >= min, got max=2 < min=4"),
        ({"max": 0}, r"key 'max': expected an integer >= 1, got 0"),
        ({"batching_timeout": -1}, r"key 'batching_timeout': expected a number >= 0"),
        ({"instance_num": True}, "got True"),
        ({"max_queue": 2.5}, r"key 'max_queue': expected an integer >= 1, got 2.5"),
    ],
)
def test_bad_numbers_are_config_errors(params: dict[str, object], match: str) -> None:
    g = tw.Graph()
    g.node("n", "Identity", **params)
    with pytest.raises(tw.ConfigError, match=match):
        g.spec()
