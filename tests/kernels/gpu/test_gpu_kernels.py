"""The GPU kernels against the CPU path (GPU machine only: marker ``gpu``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import torchweir as tw
from torchweir.data import sample_image_bytes
from torchweir.kernels.cpu.reference import preprocess_reference

pytestmark = pytest.mark.gpu


def run_graph(g: tw.Graph, xs: list[Any]) -> list[Any]:
    async def main() -> list[Any]:
        async with tw.Runtime(g) as rt:
            return await rt.submit_many(xs, return_exceptions=True)

    return asyncio.run(main())


def test_nvjpeg_decode_and_resize_match_the_cpu_path_within_one_level() -> None:
    import torch

    images = sample_image_bytes()
    g = tw.Graph()
    g.node("decode", "S[DecodeTensor,ResizeTensor]", resize_h=224, resize_w=224, max=16)
    outs = run_graph(g, images * 3)
    for image, out in zip(images * 3, outs, strict=True):
        assert isinstance(out, torch.Tensor), out
        assert out.dtype == torch.uint8
        assert out.shape == (1, 3, 224, 224)
        reference = preprocess_reference(image, 224, 224, "rgb")
        diff = (out.cpu().int() - reference.int()).abs()
        # nvJPEG and libjpeg use different IDCTs; resizes round differently
        assert diff.float().mean() < 2.0, diff.float().mean()


@pytest.mark.parametrize(("color", "data_format"), [("rgb", "nchw"), ("bgr", "hwc")])
def test_the_batch_decode_is_one_torchscript_call_giving_torchvisions_pixels(
    color: str, data_format: str
) -> None:
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg

    from torchweir.kernels.base import InstanceContext
    from torchweir.kernels.gpu import DecodeTensor

    kernel = DecodeTensor(color, data_format, decoder="torchvision")
    assert kernel.scripted
    instance = kernel.setup(InstanceContext("decode", device="cuda:0"))
    images = sample_image_bytes()
    items: list[dict[str, Any]] = [{"data": jpeg} for jpeg in images]
    assert instance.forward(items) is None
    for jpeg, item in zip(images, items, strict=True):
        want = decode_jpeg(
            torch.frombuffer(bytearray(jpeg), dtype=torch.uint8),
            mode=ImageReadMode.RGB,
            device="cuda:0",
        )
        if color == "bgr":
            want = want.flip(0)
        want = want.permute(1, 2, 0) if data_format == "hwc" else want[None]
        assert item["color"] == color
        assert torch.equal(item["result"], want)


@pytest.mark.parametrize("decoder", ["nvjpeg", "torchvision"])
def test_a_corrupt_image_fails_alone_in_a_gpu_batch(decoder: str) -> None:
    import torch

    good = sample_image_bytes()[:3]
    bad = [good[0][: len(good[0]) // 2], b"", b"\x89PNG\r\n\x1a\n" + b"0" * 64, 7]
    g = tw.Graph()
    g.node("decode", "DecodeTensor", max=16, decoder=decoder)
    outs = run_graph(g, [good[0], bad[0], good[1], bad[1], bad[2], good[2], bad[3]])
    kinds = [type(o).__name__ for o in outs]
    assert kinds == [
        "Tensor",
        "InputError",
        "Tensor",
        "InputError",
        "InputError",
        "Tensor",
        "InputError",
    ]
    assert all(o.node == "decode" for o in outs if isinstance(o, tw.InputError))
    assert all(o.is_cuda for o in outs if isinstance(o, torch.Tensor))


@pytest.mark.parametrize(
    ("decoder", "color", "bad", "resize_kernel"),
    [
        ("torchvision", "rgb", True, "triton"),
        ("torchvision", "bgr", True, "triton"),
        ("nvjpeg", "rgb", True, "triton"),
        ("nvjpeg", "bgr", False, "triton"),
        ("torchvision", "rgb", True, "torch"),
        ("torchvision", "bgr", False, "torch"),
        ("nvjpeg", "rgb", True, "torch"),
        ("nvjpeg", "bgr", False, "torch"),
    ],
)
def test_fused_decode_resize_gives_the_chains_rows_and_errors(
    decoder: str, color: str, bad: bool, resize_kernel: str
) -> None:
    """Eight sizes in one batch (so eight resize groups, out of item order), with ``bad``
    a truncated JPEG that passes the header checks and a non-JPEG. Without them, the
    binding decodes the whole batch at once: with torch's resize each size into one block
    that is resized where it lies, with Triton's in item order, resized in one launch (BGR
    read from RGB planes by the kernel itself)."""
    import torch

    from torchweir.kernels.base import InstanceContext
    from torchweir.kernels.compose import Sequential
    from torchweir.kernels.gpu import DecodeTensor, ResizeTensor
    from torchweir.kernels.gpu.fused import DecodeResizeTensor

    ctx = InstanceContext("decode", device="cuda:0")
    photos = sample_image_bytes()
    broken = [photos[0][: len(photos[0]) // 2], b"GIF89a"] if bad else []
    inputs: list[Any] = [*photos, *broken, *photos[::-1]]
    chain = Sequential(
        [
            ("", DecodeTensor(color, decoder=decoder)),
            ("", ResizeTensor(224, 200, resize_kernel=resize_kernel)),
        ]
    )
    [(_, fused)] = chain.steps
    assert isinstance(fused, DecodeResizeTensor)
    assert fused.scripted
    items: list[dict[str, Any]] = [{"data": x} for x in inputs]
    instance = chain.setup(ctx)
    [(_, fused_instance)] = instance.steps  # type: ignore[attr-defined]
    assert fused_instance.triton == (resize_kernel == "triton")
    errors = instance.forward(items)

    decode = DecodeTensor(color, decoder=decoder).setup(ctx)
    resize = ResizeTensor(224, 200, resize_kernel=resize_kernel).setup(ctx)
    assert isinstance(resize, ResizeTensor)
    assert resize.triton == (resize_kernel == "triton")
    want: list[dict[str, Any]] = [{"data": x} for x in inputs]
    want_errors = decode.forward(want) or [None] * len(want)
    decoded = [{"data": w["result"]} for w in want if "result" in w]
    assert resize.forward(decoded) is None
    if bad:
        assert errors is not None
        assert [type(e).__name__ for e in errors] == [type(e).__name__ for e in want_errors]
        assert isinstance(errors[len(photos) + 1], tw.InputError)
    else:
        assert errors is None
    rows = iter(decoded)
    for item, expected in zip(items, want, strict=True):
        assert ("result" in item) == ("result" in expected)
        if "result" in item:
            assert item["color"] == color
            assert item["result"].shape == (1, 3, 224, 200)
            assert torch.equal(item["result"], next(rows)["result"])


@pytest.mark.parametrize("flip", [False, True])
def test_triton_resize_matches_torchs_interpolate_within_one_level(flip: bool) -> None:
    """Sizes that shrink, grow, or are one pixel high or wide (where the kernel clamps
    its second row or column), in one launch."""
    import torch

    from torchweir.kernels.base import InstanceContext
    from torchweir.kernels.gpu import ResizeTensor
    from torchweir.kernels.gpu.batch_ops import compiled, flat_images
    from torchweir.kernels.gpu.ops import flat_resizer, planar_table

    torch.manual_seed(0)
    sizes = [(375, 500), (500, 333), (1, 1), (1, 640), (480, 1), (224, 224), (97, 61), (7, 9)]
    images = [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, device="cuda") for h, w in sizes]
    torch_resize = ResizeTensor(224, 200, resize_kernel="torch")
    ctx = InstanceContext("resize", device="cuda:0")
    with torch.cuda.stream(torch.cuda.Stream()):  # type: ignore[no-untyped-call]
        resize_flat = flat_resizer("triton", torch.device("cuda:0"), (224, 200))
        assert resize_flat is not None
        table = planar_table([h for h, _ in sizes], [w for _, w in sizes])
        flat, on_device = compiled(flat_images)[0](images, table, torch.device("cuda:0"))
        out = resize_flat(flat, on_device, flip=flip)
        items: list[dict[str, Any]] = [{"data": im.flip(0) if flip else im} for im in images]
        assert torch_resize.setup(ctx).forward(items) is None
        torch.cuda.current_stream().synchronize()
    assert out.shape == (len(sizes), 3, 224, 200)
    want = torch.cat([item["result"] for item in items])
    diff = (out.int() - want.int()).abs()
    assert int(diff.max()) <= 1
    assert float((diff > 0).float().mean()) < 1e-3, float((diff > 0).float().mean())


def test_resize_tensor_takes_triton_for_uint8_rgb_batches_and_torch_for_the_rest() -> None:
    import torch

    from torchweir.kernels.base import InstanceContext
    from torchweir.kernels.gpu import ResizeTensor

    ctx = InstanceContext("resize", device="cuda:0")
    triton = ResizeTensor(24, 20, resize_kernel="triton").setup(ctx)
    plain = ResizeTensor(24, 20, resize_kernel="torch").setup(ctx)
    assert isinstance(triton, ResizeTensor)
    assert triton.triton
    torch.manual_seed(1)
    uint8 = torch.randint(0, 256, (1, 3, 40, 50), dtype=torch.uint8, device="cuda")
    for batch in ([uint8, uint8.float()], [uint8, uint8[:, :1]]):  # a float and a 1-channel
        got = [{"data": x} for x in batch]
        want = [{"data": x} for x in batch]
        with torch.cuda.stream(torch.cuda.Stream()):  # type: ignore[no-untyped-call]
            assert triton.forward(got) is None
            assert plain.forward(want) is None
            torch.cuda.current_stream().synchronize()
        for a, b in zip(got, want, strict=True):
            assert a["result"].dtype == b["result"].dtype
            assert torch.equal(a["result"], b["result"])  # both through torch


def test_decode_and_resize_stay_apart_where_fusing_would_change_them() -> None:
    from torchweir.kernels.compose import Sequential
    from torchweir.kernels.gpu import DecodeTensor, ResizeTensor
    from torchweir.kernels.gpu.fused import DecodeResizeTensor

    class OwnResize(ResizeTensor):
        pass

    for steps in (
        [("", DecodeTensor(data_format="hwc")), ("", ResizeTensor(8, 8))],
        [("", DecodeTensor()), ("or", ResizeTensor(8, 8))],
        [("", DecodeTensor()), ("", OwnResize(8, 8))],
    ):
        kinds = [type(k) for _, k in Sequential(steps).steps]
        assert DecodeResizeTensor not in kinds
        assert len(kinds) == 2


def test_own_nvjpeg_binding_decodes_what_torchvision_decodes_bit_for_bit() -> None:
    """Both drive the same hardware decoder; images it cannot take (the bundled
    progressive JPEG) go through torchvision in both, so every output must match."""
    import torch

    images = sample_image_bytes()
    outs = {}
    for decoder in ("nvjpeg", "torchvision"):
        g = tw.Graph()
        g.node("decode", "DecodeTensor", max=16, decoder=decoder, instance_num=2)
        outs[decoder] = run_graph(g, images * 4)
    for own, theirs in zip(outs["nvjpeg"], outs["torchvision"], strict=True):
        assert own.is_cuda
        assert own.dtype == torch.uint8
        assert torch.equal(own.cpu(), theirs.cpu())  # instances may sit on different GPUs


def test_own_nvjpeg_binding_uses_the_hardware_and_decodes_bgr_directly() -> None:
    import torch

    from torchweir.kernels.base import InstanceContext
    from torchweir.kernels.gpu.decode import DecodeTensor

    images = sample_image_bytes()
    ctx = InstanceContext(node="decode", device="cuda:0")
    rgb = DecodeTensor(decoder="nvjpeg").setup(ctx)
    bgr = DecodeTensor(decoder="nvjpeg", color="bgr", data_format="hwc").setup(ctx)
    assert isinstance(rgb, DecodeTensor)
    assert rgb.hardware
    assert isinstance(bgr, DecodeTensor)
    assert bgr._nvjpeg is not None
    assert any(bgr._nvjpeg.supports(b) for b in images)
    a = [{"data": b} for b in images]
    b = [{"data": b} for b in images]
    assert rgb.forward(a) is None
    assert bgr.forward(b) is None
    torch.cuda.synchronize()
    for x, y in zip(a, b, strict=True):
        assert y["color"] == "bgr"
        assert torch.equal(y["result"], x["result"][0].flip(0).permute(1, 2, 0))
    rgb.close()
    bgr.close()


def test_colour_crop_pad_and_device_moves() -> None:
    import torch

    g = tw.Graph()
    chain = "S[GpuTensor,cvtColorTensor,PadTensor,CpuTensor]"
    g.node("ops", chain, color="bgr", max_h=8, max_w=10)
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.uint8).reshape(2, 3, 4, 5)
    outs = run_graph(g, [{"data": x[0:1], "color": "rgb"}, {"data": x[1:2], "color": "bgr"}])
    assert outs[0]["result"].shape == (1, 3, 8, 10)
    assert torch.equal(outs[0]["result"][..., :4, :5], x[0:1].flip(1))
    assert torch.equal(outs[1]["result"][..., :4, :5], x[1:2])  # already bgr
    assert outs[0]["result"][..., 4:, :].abs().sum() == 0
    assert not outs[0]["result"].is_cuda

    crop = tw.Graph()
    crop.node("crop", "S[GpuTensor,CropTensor,CpuTensor]")
    [ok, out_of_range] = run_graph(
        crop, [{"data": x[0:1], "_box": [1, 1, 4, 3]}, {"data": x[0:1], "_box": [0, 0, 9, 9]}]
    )
    assert torch.equal(ok["result"], x[0:1, :, 1:3, 1:4])
    assert isinstance(out_of_range, tw.InputError)


@pytest.mark.parametrize("mode", ["own", "shared", "serialized"])
def test_nvjpeg_handle_modes_decode_the_same_pixels(mode: str) -> None:
    import torch

    images = sample_image_bytes()
    g = tw.Graph()
    g.node("decode", "DecodeTensor", max=16, decoder="nvjpeg", nvjpeg_handle=mode, instance_num=3)
    reference = tw.Graph()
    reference.node("decode", "DecodeTensor", max=16, decoder="torchvision")
    for own, theirs in zip(run_graph(g, images * 6), run_graph(reference, images * 6), strict=True):
        assert torch.equal(own.cpu(), theirs.cpu())  # instances may sit on different GPUs


def test_quick_nvjpeg_calls_keep_the_gil_and_the_decode_lets_it_go() -> None:
    import ctypes

    from torchweir.kernels.gpu.nvjpeg import load_nvjpeg

    lib = load_nvjpeg()
    keeps = ctypes._FUNCFLAG_PYTHONAPI  # type: ignore[attr-defined]
    assert lib.nvjpegJpegStreamParseHeader._flags_ & keeps
    assert lib.nvjpegDecodeBatchedSupported._flags_ & keeps
    assert not lib.nvjpegDecodeBatched._flags_ & keeps
