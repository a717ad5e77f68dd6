"""executor = "process": instances in child processes, results and errors unchanged."""

from __future__ import annotations

import asyncio
import os
import pickle
import platform
import socket
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pytest
import torch
from tests.actors.process_kernels import Echo, Rewrites
from tests.helpers import slot_files, token

import torchweir as tw
from torchweir.actors import shm
from torchweir.actors.process import ProcessWorker, _answer
from torchweir.actors.request import Token
from torchweir.data import sample_image_bytes
from torchweir.kernels.base import InstanceContext

ECHO = "tests.actors.process_kernels:Echo"


def run(g: tw.Graph, xs: list[Any]) -> list[Any]:
    async def main() -> list[Any]:
        async with tw.Runtime(g) as rt:
            return await rt.submit_many(xs, return_exceptions=True)

    return asyncio.run(main())


def test_process_instances_decode_exactly_what_thread_instances_do() -> None:
    images = sample_image_bytes()
    outputs = {}
    for executor in ("thread", "process"):
        g = tw.Graph()
        g.node(
            "decode",
            "S[DecodeMat,ResizeMat,cvtColorMat,Mat2Tensor]",
            resize_h=64,
            resize_w=48,
            color="rgb",
            instance_num=2,
            executor=executor,
        )
        outputs[executor] = run(g, [*images, b"\xff\xd8\xff not a jpeg"])
    for thread, process in zip(outputs["thread"][:-1], outputs["process"][:-1], strict=True):
        assert isinstance(process, torch.Tensor)
        assert process.shape == (1, 3, 64, 48)
        assert torch.equal(thread, process)
    error = outputs["process"][-1]
    assert isinstance(error, tw.InputError)  # the type survives the trip between processes
    assert error.node == "decode"
    assert str(error) == str(outputs["thread"][-1])


def test_items_run_in_other_processes_and_bring_back_arrays_and_keys() -> None:
    g = tw.Graph()
    g.node("echo", ECHO, instance_num=2, executor="process", batching_timeout=5)

    async def main() -> list[Any]:
        async with tw.Runtime(g) as rt:
            return await asyncio.gather(*(rt.submit({"data": i}) for i in range(40)))

    outs = asyncio.run(main())
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out["result"], np.full((2, 3), 2 * i, np.float32))
    pids = {out["pid"] for out in outs}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2


def test_answers_queued_behind_each_other_keep_their_own_arrays() -> None:
    """With ``prefetch`` the child answers the next batch before the loop has read the
    last answer: the two must not share memory."""

    async def main() -> list[list[float]]:
        done: list[list[float]] = []
        both = asyncio.get_running_loop().create_future()

        def on_done(worker: ProcessWorker, batch: list[Token], errors: object) -> None:
            done.append([float(t.payload["result"][0, 0]) for t in batch])
            if len(done) == 2:
                both.set_result(None)

        worker = ProcessWorker(Echo, InstanceContext("echo"), on_done, prefetch=1)
        await worker.start()
        worker.run([token(1), token(2)])
        worker.run([token(10), token(20)])
        # block the loop, so that both answers arrive before it reads the first
        time.sleep(1.0)  # noqa: ASYNC251
        await both
        worker.stop()
        await asyncio.to_thread(worker.join, 10)
        return done

    assert asyncio.run(main()) == [[2, 4], [20, 40]]


def test_a_childs_last_data_comes_back_only_where_the_graph_reads_it() -> None:
    rewrites = "tests.actors.process_kernels:Rewrites"
    g = tw.Graph()
    g.node("p", rewrites, executor="process") >> g.node("q", "Identity", map="p[data:data]")
    outs = run(g, [1, 2])
    np.testing.assert_array_equal(outs[0], [101] * 4)  # read by q's map: sent back
    np.testing.assert_array_equal(outs[1], [102] * 4)
    g = tw.Graph()
    g.node("p", rewrites, executor="process") >> g.node("q", "Identity")
    assert run(g, [1, 2]) == [2, 4]

    def answered(send_data: bool) -> tuple[dict[str, Any], Any]:
        slots = shm.ChildSlots()
        body = _answer(Rewrites(), [{"data": 5}], slots, send_data)
        slots.close()
        _, (_, updates, placement) = pickle.loads(body)
        return updates[0], placement

    update, placement = answered(True)
    assert sorted(update) == ["data", "result"]
    assert placement is not None
    assert answered(False) == ({"result": 10}, None)  # no slot for the unread array


def test_a_child_that_dies_fails_its_batch_only_and_is_replaced() -> None:
    g = tw.Graph()
    g.node("echo", ECHO, executor="process", max=1)
    first, crashed, after, bad = run(g, [{"data": 1}, "crash", 3, "bad"])
    np.testing.assert_array_equal(first["result"], np.full((2, 3), 2, np.float32))
    assert slot_files(first["pid"]) == []
    assert isinstance(crashed, tw.KernelError)
    assert "worker process died (exit code -9)" in str(crashed)
    assert crashed.node == "echo"
    np.testing.assert_array_equal(after, np.full((2, 3), 6, np.float32))
    assert isinstance(bad, tw.InputError)


def test_large_bytes_reach_the_child_intact_also_after_it_is_replaced() -> None:
    blobs = [bytes(range(256)) * (40 + k) for k in range(3)]  # 10-11 kB: input slots
    g = tw.Graph()
    g.node("echo", ECHO, executor="process", max=1)
    first, crashed, *rest = run(g, [blobs[0], "crash", blobs[1], blobs[2], blobs[0]])
    assert isinstance(crashed, tw.KernelError)
    for out, blob in zip([first, *rest], [*blobs, blobs[0]], strict=True):
        expected = 2 * (len(blob) + sum(blob))
        np.testing.assert_array_equal(out, np.full((2, 3), expected, np.float32))
    assert slot_files(os.getpid()) == []  # the input slots went with the runtime


def test_no_shared_memory_for_requests_fails_their_batch_with_a_kernel_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(size: int) -> shm.Mapped:
        raise OSError(28, "No space left on device")

    g = tw.Graph()
    g.node("echo", ECHO, executor="process", max=1)
    monkeypatch.setattr(shm.Mapped, "create", full)  # the parent's input slots only
    big, small = run(g, [b"x" * 10_000, 3])
    assert isinstance(big, tw.KernelError)
    assert big.node == "echo"
    assert "no shared memory for its requests" in str(big)
    np.testing.assert_array_equal(small, np.full((2, 3), 6, np.float32))


def test_closing_the_runtime_stops_the_children() -> None:
    g = tw.Graph()
    g.node("echo", ECHO, instance_num=2, executor="process")

    async def main() -> set[int]:
        async with tw.Runtime(g) as rt:
            return {(await rt.submit({"data": i}))["pid"] for i in range(8)}

    for pid in asyncio.run(main()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc settings")
def test_children_reuse_freed_image_buffers_instead_of_faulting_in_new_pages() -> None:
    g = tw.Graph()
    g.node("decode", "tests.actors.process_kernels:PageFaults", executor="process")
    (out,) = run(g, [{"data": 0}])
    assert out["result"] < 5  # about 300 with glibc's defaults


def test_bad_process_settings_fail_the_build_naming_node_and_key() -> None:
    g = tw.Graph()
    g.node("n", "Identity", executor="fork")
    with pytest.raises(tw.ConfigError, match="node 'n', key 'executor': executor must be"):
        asyncio.run(tw.Runtime(g).start())
    g = tw.Graph()
    g.node("n", tw.kernel(lambda xs: xs), executor="process")
    with pytest.raises(tw.ConfigError, match="key 'executor': executor 'process' builds"):
        asyncio.run(tw.Runtime(g).start())


def test_a_kernel_that_fails_setup_in_its_child_fails_the_start() -> None:
    g = tw.Graph()
    g.node("n", "tests.actors.process_kernels:FailsSetup", executor="process")
    with pytest.raises(tw.ConfigError, match="no model for instance 0"):
        asyncio.run(tw.Runtime(g).start())


def test_a_child_whose_request_memory_is_gone_fails_that_batch_and_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import cv2

    from torchweir.actors.process import child_main

    threads = torch.get_num_threads(), cv2.getNumThreads()
    ours, theirs = socket.socketpair()
    monkeypatch.setattr(sys, "argv", ["child", str(theirs.detach())])  # the child's fd
    child = threading.Thread(target=child_main)  # in this process: same code, no spawn
    child.start()
    conn = Connection(ours.detach())
    try:
        conn.send_bytes(pickle.dumps((Echo, InstanceContext("echo"), True)))
        assert pickle.loads(conn.recv_bytes()) == ("ready", None)
        gone = f"{shm._folders()[0]}/torchweir-{os.getpid()}-gone"
        conn.send_bytes(pickle.dumps(([], (gone, []), [{"data": shm.Passed(0, 5000)}])))
        kind, error = pickle.loads(conn.recv_bytes())
        assert kind == "raised"
        assert isinstance(error, tw.KernelError)
        assert "cannot read its requests' memory" in str(error)
        conn.send_bytes(pickle.dumps(([], None, [{"data": 4}])))  # the next batch runs
        kind, (errors, updates, _) = pickle.loads(conn.recv_bytes())
        assert kind == "done"
        assert errors is None
        assert updates[0]["pid"] == os.getpid()
    finally:
        conn.close()  # the child sees EOF and returns
        child.join(10)
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    assert not child.is_alive()
