"""The GPU kernels' batch functions and ``ResizeTensor``, run on CPU tensors (no GPU needed)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import torchweir as tw
from torchweir.errors import ConfigError, InputError
from torchweir.kernels.base import InstanceContext
from torchweir.kernels.gpu import ResizeTensor
from torchweir.kernels.gpu import batch_ops as module
from torchweir.kernels.gpu.batch_ops import (
    as_rows,
    batch_ops,
    compiled,
    flat_images,
    planar_resized,
    plane_views,
    resize_groups,
    resized_rows,
)
from torchweir.kernels.gpu.ops import flat_resizer, planar_table
from torchweir.runtime.build import node_kernel


def images(seed: int = 0) -> list[torch.Tensor]:
    """Mixed shapes, layouts and dtypes, as a batch of decoded photos can be."""
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 256, (3, 40, 50), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (1, 3, 31, 17), generator=g, dtype=torch.uint8),
        torch.randint(0, 256, (1, 3, 40, 50), generator=g, dtype=torch.uint8),
        torch.rand((3, 40, 50), generator=g),
        torch.randint(0, 256, (3, 31, 17), generator=g, dtype=torch.uint8),
    ]


def reference_resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    out = F.interpolate(
        image.reshape(1, *image.shape[-3:]).float(), size=size, mode="bilinear", align_corners=False
    )
    return out.round().to(torch.uint8) if image.dtype == torch.uint8 else out


def test_the_batch_functions_compile_as_torchscript_on_this_torch() -> None:
    ops = batch_ops()
    assert ops.scripted
    assert compiled(resize_groups)[0] is ops.resize_groups  # compiled once per process


def test_scripted_and_python_batch_functions_give_the_same_tensors() -> None:
    ops = batch_ops()
    xs = images()
    groups = [[0, 2], [1, 4], [3]]
    for got, want in zip(
        ops.resize_groups(xs, groups, 24, 20), resize_groups(xs, groups, 24, 20), strict=True
    ):
        assert got.dtype == want.dtype
        assert torch.equal(got, want)
    uint8 = [xs[0], xs[1], xs[4]]
    for flip in (False, True):
        for hwc in (False, True):
            for got, want in zip(
                ops.as_rows(uint8, flip, hwc), as_rows(uint8, flip, hwc), strict=True
            ):
                assert torch.equal(got, want)
    flat = torch.arange(3 * 2 * 3 + 3 * 4 * 5, dtype=torch.uint8)
    for got, want in zip(
        ops.plane_views(flat, [2, 4], [3, 5]), plane_views(flat, [2, 4], [3, 5]), strict=True
    ):
        assert torch.equal(got, want)


@pytest.mark.parametrize("flip", [False, True])
def test_resized_rows_resize_then_flip_as_the_two_steps_do(flip: bool) -> None:
    uint8 = [x for x in images() if x.dtype == torch.uint8]
    groups = [[1, 3], [0, 2]]  # by shape, listed out of order
    got = batch_ops().resized_rows(uint8, groups, 24, 20, flip)
    assert len(got) == 4
    for row, k in zip(got, [1, 3, 0, 2], strict=True):
        want = reference_resize(uint8[k], (24, 20))
        assert torch.equal(row, want.flip(1) if flip else want)
    python = resized_rows(uint8, groups, 24, 20, flip)
    assert all(torch.equal(a, b) for a, b in zip(got, python, strict=True))


def test_planar_resized_resizes_runs_of_one_size_where_they_lie() -> None:
    """Three 40x50 images, then two 31x17, back to back in one buffer, as the nvJPEG
    binding lays out a fused decode+resize batch: the rows equal resize_groups' rows."""
    g = torch.Generator().manual_seed(1)
    big = [torch.randint(0, 256, (3, 40, 50), generator=g, dtype=torch.uint8) for _ in range(3)]
    small = [torch.randint(0, 256, (3, 31, 17), generator=g, dtype=torch.uint8) for _ in range(2)]
    flat = torch.cat([x.flatten() for x in big + small] + [torch.zeros(7, dtype=torch.uint8)])
    scripted, _ = compiled(planar_resized)
    want = resize_groups(big + small, [[0, 1, 2], [3, 4]], 24, 20)
    for fn in (scripted, planar_resized):
        got = fn(flat, [3, 2], [40, 31], [50, 17], 24, 20)
        assert len(got) == 5
        assert all(row.shape == (1, 3, 24, 20) for row in got)
        assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))


def test_as_rows_lays_out_flips_and_keeps_views() -> None:
    image = torch.arange(3 * 2 * 4, dtype=torch.uint8).reshape(3, 2, 4)
    [nchw] = batch_ops().as_rows([image], False, False)
    assert nchw.shape == (1, 3, 2, 4)
    assert nchw.data_ptr() == image.data_ptr()
    [hwc] = batch_ops().as_rows([image], False, True)
    assert torch.equal(hwc, image.permute(1, 2, 0))
    assert hwc.data_ptr() == image.data_ptr()
    [bgr] = batch_ops().as_rows([image[None]], True, True)
    assert torch.equal(bgr, image.flip(0).permute(1, 2, 0))


def test_plane_views_cut_one_buffer_into_consecutive_images() -> None:
    flat = torch.arange(3 * 2 * 3 + 3 * 4 * 5, dtype=torch.uint8)
    first, second = batch_ops().plane_views(flat, [2, 4], [3, 5])
    assert first.shape == (3, 2, 3)
    assert second.shape == (3, 4, 5)
    assert torch.equal(first.flatten(), flat[:18])
    assert torch.equal(second.flatten(), flat[18:])
    assert second.data_ptr() == flat.data_ptr() + 18  # views, not copies


def test_resize_tensor_matches_interpolate_per_image_and_fails_bad_items_alone() -> None:
    kernel = ResizeTensor(24, 20)
    xs = images()
    bad: list[Any] = [torch.zeros(2, 3, 4, 4), b"jpeg", torch.zeros(4, 4)]
    items: list[dict[str, Any]] = [{"data": x} for x in [xs[0], bad[0], *xs[1:3], bad[1]]]
    items += [{"data": xs[3]}, {"data": bad[2]}, {"data": xs[4]}]
    errors = kernel.forward(items)
    assert errors is not None
    assert [type(e).__name__ for e in errors] == [
        "NoneType",
        "InputError",
        "NoneType",
        "NoneType",
        "InputError",
        "NoneType",
        "InputError",
        "NoneType",
    ]
    assert "shape (2, 3, 4, 4)" in str(errors[1])
    assert "bytes" in str(errors[4])
    for item in items:
        if "result" in item:
            want = reference_resize(item["data"], (24, 20))
            assert item["result"].shape == (1, 3, 24, 20)
            assert item["result"].dtype == want.dtype
            assert torch.equal(item["result"], want)
    assert sum("result" in item for item in items) == 5


def test_a_batch_of_only_bad_items_fails_each_and_resizes_nothing() -> None:
    items: list[dict[str, Any]] = [{"data": None}, {"data": torch.zeros(3, 1, 2, 2)}]
    errors = ResizeTensor(8, 8).forward(items)
    assert errors is not None
    assert all(isinstance(e, InputError) for e in errors)
    assert not any("result" in item for item in items)


def test_without_torchscript_the_functions_run_as_python_and_say_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(fn: Any) -> Any:
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(module, "_compiled", {})
    monkeypatch.setattr(torch.jit, "script", refuse)
    with caplog.at_level(logging.WARNING, logger="torchweir.kernels"):
        ops = batch_ops()
    assert not ops.scripted
    assert ops.resize_groups is resize_groups
    assert "TorchScript cannot compile resize_groups (RuntimeError" in caplog.text
    item: dict[str, Any] = {"data": images()[0]}
    assert ResizeTensor(24, 20).forward([item]) is None
    assert torch.equal(item["result"], reference_resize(images()[0], (24, 20)))


def test_planar_table_places_images_one_after_another() -> None:
    assert planar_table([2, 4], [3, 5]) == [0, 2, 3, 18, 4, 5]
    assert planar_table([], []) == []


def test_flat_images_lays_images_out_where_the_table_says() -> None:
    xs = [images()[0], images()[1], images()[0].flip(0)]  # CHW, 1CHW, a strided view
    table = planar_table([40, 31, 40], [50, 17, 50])
    flat, on_device = compiled(flat_images)[0](xs, table, torch.device("cpu"))
    assert on_device.dtype == torch.int64
    assert on_device.tolist() == table
    assert flat.dtype == torch.uint8
    for k, image in enumerate(xs):
        offset, height, width = table[3 * k : 3 * k + 3]
        placed = flat[offset : offset + 3 * height * width].view(3, height, width)
        assert torch.equal(placed, image.reshape(3, height, width))
    assert flat.numel() == table[-3] + 3 * 40 * 50


def test_resize_kernel_must_be_a_known_choice() -> None:
    with pytest.raises(ValueError, match=r"resize_kernel must be one of .*got 'cuda'"):
        ResizeTensor(8, 8, resize_kernel="cuda")
    g = tw.Graph()
    g.node("resize", "ResizeTensor", resize_h=8, resize_w=8, resize_kernel="cuda")
    [spec] = g.spec().nodes
    with pytest.raises(ConfigError, match="resize_kernel must be one of") as caught:
        node_kernel(spec)
    assert caught.value.node == "resize"


def test_torch_resizes_on_the_cpu_and_where_asked() -> None:
    cuda = torch.device("cuda:0")  # a device object only: nothing runs on it
    assert flat_resizer("auto", torch.device("cpu"), (8, 8)) is None
    assert flat_resizer("triton", torch.device("cpu"), (8, 8)) is None
    assert flat_resizer("torch", cuda, (8, 8)) is None
    instance = ResizeTensor(24, 20).setup(InstanceContext("resize", device="cpu"))
    assert isinstance(instance, ResizeTensor)
    assert not instance.triton
    item: dict[str, Any] = {"data": images()[0]}
    assert instance.forward([item]) is None
    assert torch.equal(item["result"], reference_resize(images()[0], (24, 20)))


def test_without_triton_auto_falls_back_and_triton_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` fail
    monkeypatch.delitem(sys.modules, "torchweir.kernels.gpu.resize_kernel", raising=False)
    cuda = torch.device("cuda:0")
    assert flat_resizer("auto", cuda, (8, 8)) is None
    with pytest.raises(ImportError, match=r"resize_kernel='triton'\) needs Triton.*'torch'"):
        flat_resizer("triton", cuda, (8, 8))


def test_a_triton_that_fails_to_compile_leaves_auto_on_torch_and_fails_triton(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import types

    import torchweir.kernels.gpu as package

    def warm_up(device: Any, height: int, width: int, flip: bool) -> None:
        raise RuntimeError("ptxas died")

    fake = types.ModuleType("torchweir.kernels.gpu.resize_kernel")
    fake.warm_up = warm_up  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, fake.__name__, fake)
    monkeypatch.setattr(package, "resize_kernel", fake, raising=False)
    cuda = torch.device("cuda:0")
    with caplog.at_level(logging.WARNING, logger="torchweir.kernels"):
        assert flat_resizer("auto", cuda, (8, 8)) is None
    assert "the Triton resize failed to compile (ptxas died); resizing with torch" in caplog.text
    with pytest.raises(RuntimeError, match="ptxas died"):
        flat_resizer("triton", cuda, (8, 8))
