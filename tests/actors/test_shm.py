"""Shared-memory slots: answers come back as views, and a slot is reused only once free."""

from __future__ import annotations

import errno
import gc
import os
import pickle
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tests.helpers import slot_files

from torchweir.actors import process, shm
from torchweir.actors.shm import (
    ChildInputs,
    ChildSlots,
    InputSlots,
    Mapped,
    ParentSlots,
    Passed,
    Shared,
    unlink_left_by,
)
from torchweir.errors import KernelError
from torchweir.kernels.base import Kernel, Outcome, Payload


def files() -> list[str]:
    """This process's slot files."""
    return slot_files(os.getpid())


def answer(child: ChildSlots, parent: ParentSlots, values: list[Any]) -> list[Any]:
    """One round trip of ``{"data": value}`` updates, as the two processes make it."""
    child.release(parent.take_released())
    updates = [{"data": value} for value in values]
    placement = child.store(updates)
    assert placement is not None
    assert all(isinstance(u["data"], Shared) for u in updates)
    parent.views(placement, updates)
    return [u["data"] for u in updates]


def test_answers_are_views_of_the_slot_and_keep_dtype_shape_and_kind() -> None:
    child, parent = ChildSlots(), ParentSlots()
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = torch.arange(6, dtype=torch.int64).reshape(1, 2, 3)
    got_array, got_tensor = answer(child, parent, [array, tensor])
    np.testing.assert_array_equal(got_array, array)
    assert got_array.dtype == np.float32
    assert got_array.flags.writeable
    assert isinstance(got_tensor, torch.Tensor)
    assert torch.equal(got_tensor, tensor)
    base = got_array.base
    assert isinstance(base, np.ndarray)
    assert np.shares_memory(got_tensor.numpy(), base)  # one slot, no copy
    child.close()


def test_a_slot_is_written_again_only_after_its_views_are_gone() -> None:
    child, parent = ChildSlots(), ParentSlots()
    (first,) = answer(child, parent, [np.full(1000, 1, np.uint8)])
    (second,) = answer(child, parent, [np.full(1000, 2, np.uint8)])
    assert not np.shares_memory(first, second)
    assert (first == 1).all()  # held: its slot was not reused for the second answer
    first_base = first.base
    del first
    gc.collect()
    assert parent.take_released() == []  # first_base still holds the slot
    del first_base
    (third,) = answer(child, parent, [np.full(1000, 3, np.uint8)])
    assert (third == 3).all()
    assert (second == 2).all()
    assert len(files()) == 2  # the first's reused
    child.close()


def test_views_dropped_on_another_thread_release_their_slot() -> None:
    child, parent = ChildSlots(), ParentSlots()
    holder = answer(child, parent, [np.ones(10, np.float64)])
    thread = threading.Thread(target=holder.clear)
    thread.start()
    thread.join()
    released = parent.take_released()
    assert len(released) == 1
    assert parent.take_released() == []
    child.close()


def test_a_free_slot_too_small_is_replaced_and_its_file_removed() -> None:
    child, parent = ChildSlots(), ParentSlots()
    (small,) = answer(child, parent, [np.zeros(10, np.uint8)])
    del small
    (big,) = answer(child, parent, [np.arange(1 << 20, dtype=np.int32)])
    np.testing.assert_array_equal(big, np.arange(1 << 20, dtype=np.int32))
    assert len(files()) == 1
    child.close()
    assert files() == []
    np.testing.assert_array_equal(big[:5], [0, 1, 2, 3, 4])  # mappings outlive the files


def test_answers_without_arrays_use_no_slot() -> None:
    child = ChildSlots()
    updates: list[dict[str, Any]] = [{"data": "text", "n": 3, "empty": np.zeros(0)}]
    assert child.store(updates) is None
    assert updates[0] == {"data": "text", "n": 3, "empty": updates[0]["empty"]}


def test_files_of_a_dead_child_are_found_by_its_pid() -> None:
    slot = Mapped.create(1 << 16)
    assert os.path.exists(slot.path)
    unlink_left_by(os.getpid())
    assert not os.path.exists(slot.path)
    slot.close()


class Doubles(Kernel):
    def forward(self, items: list[Payload]) -> Outcome:
        for item in items:
            item["data"] = np.full(4, item["data"] * 2, np.int16)
        return None


def test_no_shared_memory_fails_the_batch_with_a_kernel_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def full(size: int) -> Mapped:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shm.Mapped, "create", full)
    kind, error = pickle.loads(process._answer(Doubles(), [{"data": 1}], ChildSlots()))
    assert kind == "raised"
    assert isinstance(error, KernelError)
    assert "no shared memory for its answer" in str(error)
    assert "No space left on device" in str(error)


def test_large_bytes_travel_in_an_input_slot_and_come_back_as_bytes() -> None:
    inputs, child = InputSlots(), ChildInputs()
    big = bytes(range(256)) * 20
    payloads = [{"data": big, "small": b"tiny", "n": 1}, {"data": b"short"}]
    sent, placement = inputs.place(payloads)
    assert placement is not None
    assert isinstance(sent[0]["data"], Passed)
    assert sent[0]["small"] == b"tiny"  # small values stay in the message
    assert sent[1] == {"data": b"short"}
    assert payloads[0]["data"] is big  # the caller's dicts are left alone
    received = pickle.loads(pickle.dumps(sent))
    child.restore(placement, received)
    assert received[0]["data"] == big
    assert type(received[0]["data"]) is bytes
    assert inputs.place([{"data": b"short"}]) == ([{"data": b"short"}], None)
    child.close()
    inputs.close()
    assert files() == []


def test_an_input_slot_is_reused_once_its_batch_is_answered() -> None:
    inputs, child = InputSlots(), ChildInputs()
    big = [{"data": b"x" * 10_000}]
    _, first = inputs.place(big)
    _, second = inputs.place(big)  # the first batch is still out
    assert first is not None
    assert second is not None
    child.restore(second, [{}])  # the child maps a slot as its batch arrives
    assert first[0] != second[0]
    inputs.give(first)
    _, third = inputs.place(big)
    assert third == (first[0], [])
    inputs.give(third)
    inputs.give(second)
    sent, bigger = inputs.place([{"data": b"y" * (1 << 20)}])  # no free slot fits: one
    assert bigger is not None  # is replaced, and the child told to unmap it
    assert bigger[1] == [second[0]]
    assert len(files()) == 2
    child.restore(bigger, sent)  # unmaps the dropped one
    assert sent[0]["data"] == b"y" * (1 << 20)
    child.close()
    inputs.close()


def test_a_full_dev_shm_sends_slots_to_the_next_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full, roomy = tmp_path / "shm", tmp_path / "tmp"
    full.mkdir()
    roomy.mkdir()
    monkeypatch.setattr(shm, "_folders", lambda: [str(full), str(roomy)])
    reserve = shm._reserve

    def reserve_once_full(fd: int, size: int) -> None:
        if not calls:
            calls.append(size)
            raise OSError(errno.ENOSPC, "No space left on device")
        reserve(fd, size)

    calls: list[int] = []
    monkeypatch.setattr(shm, "_reserve", reserve_once_full)
    slot = Mapped.create(1 << 16)
    assert os.path.dirname(slot.path) == str(roomy)
    assert list(full.iterdir()) == []  # the failed file is gone
    unlink_left_by(os.getpid())
    assert list(roomy.iterdir()) == []
    slot.close()
