"""The public API is exactly what README.md documents, exported from one place."""

from __future__ import annotations

import types

import torchweir as tw

DOCUMENTED = {
    # runtime
    "Runtime",
    "RuntimeState",
    "RuntimeStatistics",
    "Pipe",
    "pipe",
    "run",
    # graphs
    "Graph",
    "GraphSpec",
    "NodeSpec",
    # kernels
    "Kernel",
    "InstanceContext",
    "kernel",
    "kernels",
    "register_filter",
    "register_kernel",
    # errors
    "bench",
    "errors",
    "TorchweirError",
    "ConfigError",
    "SubmitError",
    "Overloaded",
    "DeadlineExceeded",
    "RuntimeClosed",
    "UnknownNode",
    "KernelError",
    "InputError",
}


def test_all_is_exactly_the_documented_api() -> None:
    assert set(tw.__all__) == DOCUMENTED


def test_every_public_attribute_is_in_all() -> None:
    public = {
        name
        for name, value in vars(tw).items()
        if not name.startswith("_")
        and not (isinstance(value, types.ModuleType) and name not in tw.__all__)
    }
    assert public == set(tw.__all__)


def test_errors_form_the_documented_tree() -> None:
    assert issubclass(tw.ConfigError, tw.TorchweirError)
    for cls in (tw.Overloaded, tw.DeadlineExceeded, tw.RuntimeClosed, tw.UnknownNode):
        assert issubclass(cls, tw.SubmitError)
    assert issubclass(tw.InputError, tw.KernelError)
    assert issubclass(tw.KernelError, tw.TorchweirError)
    assert issubclass(tw.DeadlineExceeded, TimeoutError)
    assert issubclass(tw.UnknownNode, LookupError)
    assert tw.errors.__doc__ is not None
    assert "└── InputError" in tw.errors.__doc__
