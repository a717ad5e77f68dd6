"""The profile tools' own logic: variant settings (benchmarks/gpu_pipeline_profile.py and
benchmarks/gpu_joint_ceiling.py) and the thread profile's report (benchmarks/thread_profile.py)."""

from __future__ import annotations

import argparse
import asyncio

import pytest
from benchmarks.gpu_joint_ceiling import parse_variant
from benchmarks.gpu_pipeline_profile import runtime_settings, variant_graph
from benchmarks.thread_profile import ThreadProfile, _quantiles


def profile_args(**overrides: object) -> argparse.Namespace:
    defaults = {
        "decode": "gpu",
        "decode_instances": 0,
        "model_instances": 2,
        "model_timeout": 0.0,
        "max_batch": 256,
        "device": "",
        "model_compile": "",
        "compile_dynamic": False,
        "set": [],
        "completion": "",
        "switch_interval": 0.0005,
        "clients": 256,
    }
    return argparse.Namespace(**(defaults | overrides))


def test_variant_settings_reach_node_fields_and_kernel_parameters() -> None:
    variant = "service+decode.instance_num=3+decode.backend=DecodeTensor+decode.decoder=mixed"
    spec, kind = variant_graph(f"{variant}+runtime.clients=512", profile_args())
    decode = spec.node("decode")
    assert (decode.instance_num, decode.backend, decode.params["decoder"]) == (
        3,
        "DecodeTensor",
        "mixed",
    )
    assert spec.node("resnet50").instance_num == 2  # other nodes keep their settings
    assert kind == "jpeg"


def test_merged_variant_runs_both_stages_in_one_node_with_the_decode_settings() -> None:
    from torchweir.kernels.compose import Sequential
    from torchweir.kernels.models.torch_model import TorchModel

    args = profile_args(decode="cpu", device="cpu", max_batch=8)
    spec, kind = variant_graph("merged+decode.instance_num=3+decode.max=4", args)
    (node,) = spec.nodes
    assert (node.name, node.instance_num, node.max, node.next, kind) == ("decode", 3, 4, (), "jpeg")
    assert isinstance(node.kernel, Sequential)
    (_, decode), (_, model) = node.kernel.steps
    assert isinstance(decode, Sequential)
    assert isinstance(model, TorchModel)


def test_runtime_settings_override_the_command_line() -> None:
    args = profile_args()
    assert runtime_settings("service", args) == (0.0005, 256)
    assert runtime_settings("service+runtime.switch_interval=0+runtime.clients=512", args) == (
        0.0,
        512,
    )
    with pytest.raises(SystemExit, match=r"runtime\.loop"):
        runtime_settings("service+runtime.loop=asyncio", args)


def test_joint_variants_carry_graph_settings_and_the_burner_duty() -> None:
    assert parse_variant("threads") == ("threads", [], 0.0)
    assert parse_variant("threads+decode.instance_num=3+burner=0.25") == (
        "threads",
        ["decode.instance_num=3"],
        0.25,
    )
    assert parse_variant("service+decode.instance_num=3+runtime.clients=512") == (
        "service",
        ["decode.instance_num=3", "runtime.clients=512"],
        0.0,
    )
    with pytest.raises(SystemExit, match="burner= is for the threads variant"):
        parse_variant("service+burner=0.5")
    with pytest.raises(SystemExit, match=r"unknown variant 'model\+"):
        parse_variant("model+decode.instance_num=3")


def test_quantiles_are_in_milliseconds() -> None:
    summary = _quantiles([0.004, 0.001, 0.002, 0.003])
    assert summary == {"probes": 4, "p50": 3.0, "p99": 4.0, "mean": 2.5}
    assert _quantiles([]) == {"probes": 0, "p50": None, "p99": None, "mean": None}


@pytest.mark.asyncio
async def test_thread_profile_reports_gil_waits_and_loop_lag() -> None:
    profile = ThreadProfile(interval_s=0.001)
    profile.start(asyncio.get_running_loop())
    await asyncio.sleep(0.1)
    report = profile.stop()
    for key in ("gil_wait_ms", "loop_lag_ms"):
        summary = report[key]
        assert summary["probes"] > 0, key
        assert 0 <= summary["p50"] <= summary["p99"], key
    assert report["process_cpu_pct"] >= 0
