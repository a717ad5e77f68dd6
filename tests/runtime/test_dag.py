"""DAGs at run time: fan-out, joins with map, every filter, node_name entry, no loss."""

from __future__ import annotations

import asyncio
import random
import threading
from typing import Any

import pytest
from tests.dag_kernels import Concat, Ordered, Silent, Tag, data_is_skip

import torchweir as tw
from torchweir.graphs.toml import loads_toml

pytestmark = pytest.mark.asyncio


async def run_one(graph: tw.Graph | tw.GraphSpec, x: Any, **kwargs: Any) -> Any:
    async with tw.Runtime(graph) as rt:
        return await rt.submit(x, **kwargs)


def abc(filter: str = "", a: tw.Kernel | None = None) -> tw.Graph:
    """a -> b -> c, each appending its letter; ``filter`` on b."""
    g = tw.Graph()
    na = g.node("a", a or Tag("a"))
    nb = g.node("b", Tag("b"), **({"filter": filter} if filter else {}))
    nc = g.node("c", Tag("c"))
    na >> nb >> nc
    return g


# -- filters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("", "xabc"),  # default swap: a's result is b's data
        ("swap", "xabc"),
        ("Run", "xbc"),  # torchpipe: no swap, b runs on a's own data
        ("Continue", "xbc"),
        ("Skip", "xac"),  # b does not run; a's result flows on
        ("SerialSkip", "xa"),  # b and its chain (c) are folded away
        ("SubGraphSkip", "xa"),  # everything b dominates is folded away
        ("or", "xac"),  # a produced a result: the fallback is skipped
    ],
)
async def test_every_filter_value(filter: str, expected: str) -> None:
    assert await run_one(abc(filter), "x") == expected


async def test_break_ends_the_request_with_its_current_dict() -> None:
    assert await run_one(abc("Break"), "x") == {"data": "x", "result": "xa"}
    request = {"data": "x", "mine": 1}
    returned = await run_one(abc("Break"), request)
    assert returned is request
    assert request == {"data": "x", "mine": 1, "result": "xa"}


async def test_error_filter_fails_the_request_naming_the_node() -> None:
    with pytest.raises(tw.KernelError, match="node 'b': filter 'Error' stopped the request"):
        await run_one(abc("Error"), "x")


async def test_or_runs_the_fallback_when_the_parent_failed_or_left_no_result() -> None:
    failing = abc("or", a=Tag("a", fail_on="bad"))
    async with tw.Runtime(failing) as rt:
        assert await rt.submit("ok") == "okac"
        assert await rt.submit("bad") == "badbc"  # b retried from a's input
    assert await run_one(abc("or", a=Silent()), "y") == "ybc"


async def test_a_missing_result_without_fallback_fails_naming_the_parent() -> None:
    with pytest.raises(tw.KernelError, match="node 'a': kernel left no 'result'"):
        await run_one(abc(a=Silent()), "x")


async def test_custom_filters_register_by_name() -> None:
    tw.register_filter("skip_if_told", data_is_skip)
    g = abc("skip_if_told")
    async with tw.Runtime(g) as rt:
        assert await rt.submit("skip") == "skipac"
        assert await rt.submit("go") == "goabc"


# -- fan-out, joins, map ---------------------------------------------------------------


def diamond(slow_last: bool = True) -> tw.Graph:
    """src -> fast, src -> slow -> join(map) -> out. One branch finishes after the other."""
    fast_done = threading.Event()
    slow_done = threading.Event()
    g = tw.Graph()
    src = g.node("src", Tag("s"))
    fast = g.node("fast", Ordered("F", after=None if slow_last else slow_done, signal=fast_done))
    slow = g.node("slow", Ordered("S", after=fast_done if slow_last else None, signal=slow_done))
    join = g.node("join", Concat(), map="slow[result:data],fast[result:other]")
    out = g.node("out", Tag("!"))
    src >> [fast, slow]
    [fast, slow] >> join
    join >> out
    return g


@pytest.mark.parametrize("slow_last", [True, False])
async def test_a_join_waits_for_both_branches_whatever_their_order(slow_last: bool) -> None:
    assert await run_one(diamond(slow_last), "x") == "xsS+xsF!"


async def test_joins_under_concurrent_load_never_mix_requests() -> None:
    g = tw.Graph()
    src = g.node("src", Tag(""), instance_num=2)
    left = g.node("left", Tag("L", max_batch=3), instance_num=3)
    right = g.node("right", Tag("R", max_batch=5), batching_timeout=1)
    join = g.node("join", Concat(), map="left[result:data],right[result:other]")
    src >> [left, right]
    [left, right] >> join
    xs = [f"r{i}" for i in range(3000)]
    random.Random(7).shuffle(xs)
    async with tw.Runtime(g) as rt:
        results = await asyncio.gather(*(rt.submit(x) for x in xs))
        assert rt.statistics().pending == 0
    assert results == [f"{x}L+{x}R" for x in xs]


async def test_fan_out_without_a_join_returns_every_leaf() -> None:
    g = tw.Graph()
    src = g.node("src", Tag("s"))
    src >> [g.node("a", Tag("a")), g.node("b", Tag("b"))]
    assert await run_one(g, "x") == {"a": "xsa", "b": "xsb"}
    request = await run_one(g, {"data": "x"})
    assert request["result"] == {"a": "xsa", "b": "xsb"}


async def test_a_failing_branch_fails_the_request_once() -> None:
    g = tw.Graph()
    src = g.node("src", Tag("s"))
    ok = g.node("ok", Tag("o"))
    bad = g.node("bad", Tag("b", fail_on="x"))
    join = g.node("join", Concat(), map="ok[result:data],bad[result:other]")
    src >> [ok, bad]
    [ok, bad] >> join
    async with tw.Runtime(g) as rt:
        outcomes = await rt.submit_many(["x1", "y1", "x2"], return_exceptions=True)
        assert rt.statistics().pending == 0
        join_stats = next(s for s in rt.statistics().nodes if s.node == "join")
    assert outcomes[1] == "y1so+y1sb"
    for failed in (outcomes[0], outcomes[2]):
        assert isinstance(failed, tw.KernelError)
        assert failed.node == "bad"
    assert join_stats.dispatched == 1  # the failed requests never reached the join


async def test_map_can_read_an_ancestor_and_a_skipped_chain() -> None:
    spec = loads_toml(
        """
        [a]
        backend = "tests.dag_kernels:Tag"
        suffix = "a"
        next = "b,d"
        [b]
        backend = "tests.dag_kernels:Tag"
        suffix = "b"
        filter = "SerialSkip"
        next = "c"
        [c]
        backend = "tests.dag_kernels:Tag"
        suffix = "c"
        next = "j"
        [d]
        backend = "tests.dag_kernels:Tag"
        suffix = "d"
        next = "j"
        [j]
        backend = "tests.dag_kernels:Concat"
        map = "c[result:data],a[data:other]"
        """
    )
    # b folds b and c: c's output is b's incoming dict, whose result is a's ("xa")
    assert await run_one(spec, "x") == "xa+x"


async def test_subgraph_skip_folds_the_dominated_region() -> None:
    g = tw.Graph()
    a = g.node("a", Tag("a"))
    b = g.node("b", Tag("b"), filter="SubGraphSkip")
    c, e, d = g.node("c", Tag("c")), g.node("e", Tag("e")), g.node("d", Tag("d"))
    f = g.node("f", Concat(), map="c[result:data],d[result:other]")
    a >> [b, d]
    b >> [c, e]
    [c, e, d] >> f
    # b dominates c and e; f (also fed by d) is the exit, reached through c and e
    assert await run_one(g, "x") == "xa+xad"


# -- entry with node_name --------------------------------------------------------------


async def test_node_name_can_enter_mid_graph_and_joins_wait_only_for_reachable_parents() -> None:
    async with tw.Runtime(diamond()) as rt:
        entered = await rt.submit({"data": "q", "other": "o"}, node_name="join")
        assert entered["result"] == "q+o!"  # the entry runs on the caller's dict, no map
        request = {"data": "q", "node_name": "out"}
        assert (await rt.submit(request))["result"] == "q!"
        with pytest.raises(tw.KernelError, match="map reads 'slow', which this request did"):
            await rt.submit("q", node_name="fast")
        assert rt.statistics().pending == 0


async def test_a_multi_root_graph_enters_at_its_declared_entry() -> None:
    spec = loads_toml(
        """
        entry = "left"
        [left]
        backend = "tests.dag_kernels:Tag"
        suffix = "L"
        [right]
        backend = "tests.dag_kernels:Tag"
        suffix = "R"
        """
    )
    async with tw.Runtime(spec) as rt:
        assert await rt.submit("x") == "xL"
        assert await rt.submit("x", node_name="right") == "xR"
