"""Sequential: steps in one call, per-step filters, per-item errors, (or) fallbacks."""

from __future__ import annotations

from typing import Any

import pytest
from tests.dag_kernels import ItemSilent, ItemTag, Silent, Tag

import torchweir as tw
from torchweir.errors import KernelError
from torchweir.kernels.compose import Identity, Sequential


def run(kernel: tw.Kernel, *datas: Any) -> tuple[list[dict[str, Any]], Any]:
    items = [{"data": d} for d in datas]
    return items, kernel.forward(items)


Kinds = tuple[type[Any], type[Any]]


# Every semantic test runs twice: with batch kernels (step by step over the batch) and
# with item kernels (each item through every step in turn).
@pytest.fixture(params=["step-wise", "item-wise"])
def kinds(request: pytest.FixtureRequest) -> Kinds:
    return (Tag, Silent) if request.param == "step-wise" else (ItemTag, ItemSilent)


def test_steps_run_in_order_with_swap_between_them(kinds: Kinds) -> None:
    Tag, _ = kinds
    items, errors = run(Sequential([("", Tag("a")), ("", Tag("b")), ("swap", Tag("c"))]), "x")
    assert errors is None
    assert items[0]["result"] == "xabc"
    assert items[0]["data"] == "xab"  # torchpipe leaves data as the last step's input
    assert Sequential([("", Tag("a")), ("", Tag("b"))])._item_wise is (Tag is ItemTag)


def test_skip_and_run_prefixes(kinds: Kinds) -> None:
    Tag, _ = kinds
    items, _ = run(Sequential([("", Tag("a")), ("Skip", Tag("b")), ("", Tag("c"))]), "x")
    assert items[0]["result"] == "xac"
    items, _ = run(Sequential([("", Tag("a")), ("Run", Tag("b"))]), "x")
    assert items[0]["result"] == "xb"  # Run does not swap: b sees a's input


def test_break_leaves_the_chain_as_it_is(kinds: Kinds) -> None:
    Tag, _ = kinds
    items, errors = run(Sequential([("", Tag("a")), ("Break", Tag("b")), ("", Tag("c"))]), "x")
    assert errors is None
    assert items[0]["result"] == "xa"


def test_an_item_error_leaves_the_chain_and_spares_its_batch_mates(kinds: Kinds) -> None:
    Tag, _ = kinds
    seq = Sequential([("", Tag("a", fail_on="bad")), ("", Tag("b"))])
    items, errors = run(seq, "ok", "bad", "fine")
    assert [i.get("result") for i in items] == ["okab", None, "fineab"]
    assert errors is not None
    assert errors[0] is None
    assert errors[2] is None
    assert isinstance(errors[1], ValueError)


def test_or_retries_a_failed_or_empty_item_from_its_data(kinds: Kinds) -> None:
    Tag, Silent = kinds
    seq = Sequential([("", Tag("gpu", fail_on="cmyk")), ("or", Tag("cpu")), ("", Tag("!"))])
    items, errors = run(seq, "jpeg", "cmyk")
    assert errors is None
    assert [i["result"] for i in items] == ["jpeggpu!", "cmykcpu!"]
    items, errors = run(Sequential([("", Silent()), ("or", Tag("fallback"))]), "x")
    assert errors is None
    assert items[0]["result"] == "xfallback"


def test_a_step_that_leaves_no_result_fails_the_item_naming_the_step(kinds: Kinds) -> None:
    Tag, Silent = kinds
    _, errors = run(Sequential([("", Silent()), ("", Tag("b"))]), "x")
    assert errors is not None
    assert isinstance(errors[0], KernelError)
    assert str(errors[0]) == f"step 0 ({Silent.__name__}) left no 'result'"


def test_steps_with_a_smaller_max_are_fed_in_chunks() -> None:
    seen: list[int] = []

    @tw.kernel(max=2)
    def pairs(batch: list[str]) -> list[str]:
        seen.append(len(batch))
        return [x.upper() for x in batch]

    seq = Sequential([("", Identity()), ("", pairs)])
    assert seq.max_batch == 2
    items, errors = run(seq, "a", "b", "c", "d", "e")
    assert errors is None
    assert [i["result"] for i in items] == ["A", "B", "C", "D", "E"]
    assert seen == [2, 2, 1]


def test_a_raising_step_fails_only_its_chunk() -> None:
    calls = []

    @tw.kernel(max=2)
    def flaky(batch: list[str]) -> list[str]:
        calls.append(list(batch))
        if "boom" in batch:
            raise RuntimeError("boom")
        return batch

    items, errors = run(Sequential([("", Identity()), ("", flaky)]), "a", "boom", "c")
    assert errors is not None
    assert isinstance(errors[0], RuntimeError)
    assert isinstance(errors[1], RuntimeError)
    assert errors[2] is None
    assert items[2]["result"] == "c"


def test_setup_gives_each_instance_its_own_steps() -> None:
    class Counted(tw.Kernel):
        made = 0

        def setup(self, ctx: tw.InstanceContext) -> tw.Kernel:
            Counted.made += 1
            return Counted()

    seq = Sequential([("", Counted()), ("", Counted())])
    copy = seq.setup(tw.InstanceContext("n"))
    assert isinstance(copy, Sequential)
    assert copy is not seq
    assert Counted.made == 2


def test_the_first_step_cannot_have_a_filter() -> None:
    with pytest.raises(ValueError, match=r"first step always runs; remove its filter \(or\)"):
        Sequential([("or", Identity())])
