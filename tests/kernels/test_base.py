from __future__ import annotations

from typing import Any

import pytest

import torchweir as tw
from torchweir.errors import KernelError
from torchweir.kernels import registry
from torchweir.kernels.base import FunctionKernel


def test_kernel_decorator_bare_and_with_max() -> None:
    @tw.kernel
    def one(batch: list[int]) -> list[int]:
        """Adds one."""
        return [x + 1 for x in batch]

    @tw.kernel(max=16)
    def two(batch: list[int]) -> list[int]:
        return [x + 2 for x in batch]

    assert isinstance(one, FunctionKernel)
    assert one.max_batch == 1
    assert two.max_batch == 16
    assert one([1, 2]) == [2, 3]
    assert one.__doc__ == "Adds one."
    assert repr(two) == "<kernel two max=16>"


def test_forward_writes_result_and_reports_item_errors_in_place() -> None:
    @tw.kernel(max=4)
    def half(batch: list[int]) -> list[Any]:
        return [ValueError("odd") if x % 2 else x // 2 for x in batch]

    items = [{"data": 4}, {"data": 3}]
    errors = half.forward(items)
    assert items[0]["result"] == 2
    assert "result" not in items[1]
    assert errors is not None
    assert errors[0] is None
    assert isinstance(errors[1], ValueError)
    assert half.forward([{"data": 2}]) is None


@pytest.mark.parametrize(
    ("returned", "match"),
    [
        ([1], "returned 1 results for a batch of 2"),
        ("ab", "must return a list with one result per item, got str"),
        (None, "got NoneType"),
    ],
)
def test_forward_rejects_a_wrong_shaped_return(returned: Any, match: str) -> None:
    kernel = tw.kernel(lambda batch: returned, max=2)
    with pytest.raises(KernelError, match=match):
        kernel.forward([{"data": 1}, {"data": 2}])


def test_kernel_decorator_rejects_async_functions_and_bad_max() -> None:
    async def coro(batch: list[int]) -> list[int]:
        return batch

    with pytest.raises(TypeError, match="is async; kernels run on instance threads"):
        tw.kernel(coro)
    with pytest.raises(ValueError, match="kernel max must be an int >= 1, got 0"):
        tw.kernel(max=0)(lambda b: b)


def test_from_params_passes_only_the_keys_a_kernel_takes() -> None:
    class Resize(tw.Kernel):
        def __init__(self, resize_h: int, resize_w: int) -> None:
            self.size = (resize_h, resize_w)

    class Anything(tw.Kernel):
        def __init__(self, **params: Any) -> None:
            self.params = params

    resize = Resize.from_params({"resize_h": 2, "resize_w": 3, "color": "rgb"})
    assert isinstance(resize, Resize)
    assert resize.size == (2, 3)
    anything = Anything.from_params({"model::cache": "x.trt"})
    assert isinstance(anything, Anything)
    assert anything.params == {"model::cache": "x.trt"}


def test_registry_builds_registered_kernels() -> None:
    class Scale(tw.Kernel):
        def __init__(self, factor: float = 1.0) -> None:
            self.factor = factor

    shared = tw.kernel(lambda b: b)
    tw.register_kernel("TestScale", Scale)
    tw.register_kernel("TestShared", shared)
    tw.register_kernel("TestFactory", lambda params: Scale(params["factor"] * 2))
    built = registry.create_kernel("TestScale", {"factor": 3.0})
    assert isinstance(built, Scale)
    assert built.factor == 3.0
    assert registry.create_kernel("TestShared", {}) is shared
    doubled = registry.create_kernel("TestFactory", {"factor": 2.0})
    assert isinstance(doubled, Scale)
    assert doubled.factor == 4.0
    assert registry.is_registered("Identity")
    with pytest.raises(ValueError, match="kernel names must be identifiers, got 'a b'"):
        tw.register_kernel("a b", Scale)
    with pytest.raises(TypeError, match="cannot register 3"):
        tw.register_kernel("Three", 3)  # type: ignore[arg-type]
