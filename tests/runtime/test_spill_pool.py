"""A node with a spill pool, run end to end: the pool takes work only while the node's own
instances are busy, its results go where the node's go, and nothing is lost."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import numpy as np
import pytest
from tests.runtime.test_runtime import Gate

import torchweir as tw
from torchweir.graphs.toml import loads_toml

pytestmark = pytest.mark.asyncio


@tw.kernel(max=2)
def tagged(batch: list[int]) -> list[tuple[str, int]]:
    return [("spill", x) for x in batch]


def node(rt: tw.Runtime, name: str = "n") -> tw.NodeStatistics:
    return next(n for n in rt.statistics().nodes if n.node == name)


async def test_the_pool_serves_while_the_nodes_instance_is_busy() -> None:
    gate = Gate(max=8)
    g = tw.Graph()
    g.node("n", gate.kernel, spill=tagged, spill_instance_num=2) >> g.node("after", "Identity")
    async with tw.Runtime(g) as rt:
        first = asyncio.ensure_future(rt.submit(0))
        await gate.wait_entered()
        # the node's only instance is stuck: the pool serves the rest, in batches of 2
        assert await rt.submit_many(range(1, 6)) == [("spill", x) for x in range(1, 6)]
        assert not first.done()
        gate.open()
        assert await first == 0
        stats = node(rt)
        assert (stats.instances, stats.spill_instances) == (3, 2)
        assert (stats.dispatched, stats.spilled) == (6, 5)
        assert max(size for size, count in enumerate(stats.batch_sizes) if count) == 2


async def test_under_load_every_request_gets_one_result_from_either_pool() -> None:
    @tw.kernel(max=8)
    def slow(batch: list[int]) -> list[tuple[str, int]]:
        time.sleep(0.002)
        return [("own", x) for x in batch]

    g = tw.Graph()
    g.node("n", slow, spill=tagged, spill_instance_num=2)
    async with tw.Runtime(g) as rt:
        results = await asyncio.gather(*(rt.submit(i) for i in range(300)))
        stats = node(rt)
    assert [x for _, x in results] == list(range(300))
    spilled = sum(1 for where, _ in results if where == "spill")
    assert 0 < spilled < 300
    assert (stats.dispatched, stats.spilled) == (300, spilled)


async def test_a_pool_of_child_processes_fails_only_its_bad_items() -> None:
    gate = Gate(max=8)
    g = tw.Graph()
    g.node(
        "decode",
        gate.kernel,
        spill="tests.actors.process_kernels:Echo",
        spill_executor="process",
        spill_max=4,
    )
    async with tw.Runtime(g) as rt:
        first = asyncio.ensure_future(rt.submit(7))
        await gate.wait_entered()
        outcomes: list[Any] = await rt.submit_many(
            [{"data": 1}, {"data": "bad"}, {"data": 3}], return_exceptions=True
        )
        assert isinstance(outcomes[1], tw.InputError)
        assert outcomes[1].node == "decode"
        for outcome, data in ((outcomes[0], 1), (outcomes[2], 3)):
            np.testing.assert_array_equal(outcome["result"], np.full((2, 3), 2.0 * data))
            assert outcome["pid"] != os.getpid()
        # the pool stays healthy after the bad item
        np.testing.assert_array_equal(await rt.submit(5), np.full((2, 3), 10.0))
        gate.open()
        assert await first == 7
        assert node(rt, "decode").spilled == 4


async def test_a_toml_graph_with_a_spill_pool_runs() -> None:
    text = """
    [n]
    backend = "Identity"
    spill = "Identity"
    spill_instance_num = 2
    spill_max = 4
    """
    async with tw.Runtime(loads_toml(text)) as rt:
        assert await rt.submit_many(range(10)) == list(range(10))
        assert node(rt).spill_instances == 2
