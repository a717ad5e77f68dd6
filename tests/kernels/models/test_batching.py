"""Host-side batching helpers (CPU only)."""

from __future__ import annotations

import pytest
import torch

from torchweir.kernels.models.batching import gather_rows, run_batched, upload_batch
from torchweir.kernels.models.config import ModelConfig


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float16, torch.float32, torch.bfloat16])
def test_gather_rows_equals_cat_for_every_dtype(dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    samples = [torch.rand(1, 3, 5, 4, generator=generator).mul(255).to(dtype) for _ in range(6)]
    out = torch.empty(6, 3, 5, 4, dtype=dtype)
    assert gather_rows(samples, out) is out
    assert torch.equal(out, torch.cat(samples))


def test_gather_rows_reads_strided_views_and_fills_only_its_rows() -> None:
    big = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    samples = [big[:1, ..., ::2], big[1:].transpose(2, 3)[..., :2]]  # both 1x3x4x2 views
    assert not any(s.is_contiguous() for s in samples)
    out = torch.full((3, 3, 4, 2), 7, dtype=torch.uint8)
    gather_rows(samples, out[:2])
    assert torch.equal(out[:2], torch.cat([s.contiguous() for s in samples]))
    assert bool((out[2] == 7).all())


def test_gather_rows_takes_samples_that_require_grad() -> None:
    samples = [torch.ones(1, 2, requires_grad=True), torch.zeros(1, 2, requires_grad=True)]
    out = torch.empty(2, 2)
    gather_rows(samples, out)
    assert out.tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_upload_batch_concatenates_mixed_dtypes_where_they_lie() -> None:
    samples = [torch.ones(1, 2, dtype=torch.uint8), torch.full((1, 2), 0.5)]
    batch = upload_batch(samples)  # only same-dtype host batches are pinned
    assert batch.dtype == torch.float32
    assert torch.equal(batch, torch.tensor([[1.0, 1.0], [0.5, 0.5]]))


def test_a_concat_gets_host_and_device_samples_together_device_first() -> None:
    # "meta" stands in for a GPU here: a batch that a spill pool fed in part
    host, device = torch.zeros(1, 3, 2, 2), torch.empty(1, 3, 2, 2, device="meta")
    samples = [host, device, host + 1, device]
    seen: list[list[str]] = []

    def concat(chunk: list[torch.Tensor]) -> torch.Tensor:
        seen.append([s.device.type for s in chunk])
        return torch.zeros(len(chunk), 3, 2, 2)

    def run(batch: torch.Tensor) -> torch.Tensor:
        return torch.arange(batch.shape[0])

    items: list[dict[str, object]] = [{"data": s} for s in samples]
    assert run_batched(items, run, ModelConfig(max_batch=8), concat=concat) is None
    assert seen == [["meta", "meta", "cpu", "cpu"]]  # one model call, not one per device
    # each item gets the row its sample went into
    assert [int(item["result"]) for item in items] == [2, 0, 3, 1]  # type: ignore[call-overload]


def test_without_a_concat_samples_are_grouped_by_device() -> None:
    host, device = torch.zeros(1, 3, 2, 2), torch.empty(1, 3, 2, 2, device="meta")
    samples = [host, device, host + 1]
    sizes: list[int] = []

    def run(batch: torch.Tensor) -> torch.Tensor:
        sizes.append(batch.shape[0])
        return torch.zeros(batch.shape[0], device=batch.device)

    assert run_batched([{"data": s} for s in samples], run, ModelConfig(max_batch=8)) is None
    assert sorted(sizes) == [1, 2]
