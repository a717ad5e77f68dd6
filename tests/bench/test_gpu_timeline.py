"""The GPU timeline's reduction of a kernel trace (benchmarks/gpu_timeline.py)."""

from __future__ import annotations

from typing import Any

from benchmarks.gpu_timeline import api_time, merged, overlap, summarise


def kernel(name: str, start: float, duration: float, stream: int) -> dict[str, Any]:
    return {"cat": "kernel", "name": name, "ts": start, "dur": duration, "args": {"stream": stream}}


def test_intervals_merge_and_overlap() -> None:
    assert merged([(5, 8), (0, 2), (1, 3), (3, 4)]) == [(0, 4), (5, 8)]
    assert overlap([(0, 10), (20, 30)], [(5, 25)]) == 10


def test_decode_streams_are_those_that_resized_or_ran_nvjpeg() -> None:
    events = [
        kernel("triton_poi_fused_convolution", 0, 10, stream=7),
        kernel("sm90_xmma_gemm", 20, 10, stream=8),
        kernel("upsample_bilinear2d_out_frame", 5, 10, stream=9),
        kernel("elementwise_kernel", 28, 4, stream=9),  # on a decode stream: decode's
        kernel("nvjpeg::ycc_to_rgb", 40, 5, stream=10),
        {"cat": "gpu_memcpy", "name": "Memcpy HtoD", "ts": 35, "dur": 5, "args": {"stream": 9}},
        {"cat": "cpu_op", "name": "aten::cat", "ts": 0, "dur": 100, "args": {}},  # ignored
    ]
    summary = summarise(events)
    assert summary["window_ms"] == 0.045  # 45 µs, first kernel start to last end
    assert summary["kernels"] == 5
    assert summary["decode_kernels"] == 3
    assert summary["streams"] == {"decode": 2, "all": 4}
    assert summary["model_pct"] == round(100 * 20 / 45, 1)
    assert summary["decode_pct"] == round(100 * 19 / 45, 1)  # 5-15, 28-32, 40-45
    assert summary["overlap_pct"] == round(100 * 7 / 45, 1)  # 5-10 and 28-30
    assert summary["copy_pct"] == round(100 * 5 / 45, 1)
    assert summary["gpu_busy_pct"] == round(100 * 37 / 45, 1)  # 0-15, 20-32, 35-45
    # per side, by summed time: ms per second of the 45 µs window, launches per second
    per_second = 1e6 / 45
    assert summary["top_kernels"]["decode"] == {
        "upsample_bilinear2d_out_frame": [round(10 / 1e3 * per_second, 2), round(per_second)],
        "nvjpeg::ycc_to_rgb": [round(5 / 1e3 * per_second, 2), round(per_second)],
        "elementwise_kernel": [round(4 / 1e3 * per_second, 2), round(per_second)],
    }
    assert list(summary["top_kernels"]["model"]) == [
        "triton_poi_fused_convolution",
        "sm90_xmma_gemm",
    ]


def test_a_trace_without_kernels_says_so() -> None:
    assert summarise([{"cat": "cpu_op", "name": "x", "ts": 0, "dur": 1}]) == {"kernels": 0}


def call(name: str, duration: float, tid: int, cat: str = "cuda_runtime") -> dict[str, Any]:
    return {"cat": cat, "name": name, "ts": 0, "dur": duration, "tid": tid, "args": {}}


def test_api_time_ranks_each_threads_cuda_calls_per_second_of_window() -> None:
    events = [
        call("cudaStreamSynchronize", 300, tid=11),
        call("cudaStreamSynchronize", 200, tid=11),
        call("cudaLaunchKernel", 50, tid=11),
        call("cuLaunchKernel", 40, tid=11, cat="cuda_driver"),
        call("cudaGraphLaunch", 900, tid=22),
        call("cudaMemcpyAsync", 10, tid=33),  # a thread nobody named
        kernel("sm90_xmma_gemm", 0, 10, stream=7),  # not an API call: ignored
    ]
    api = api_time(events, window_us=2_000, names={11: "decode:0", 22: "resnet50:0"}, top=2)
    assert list(api) == ["resnet50:0", "decode:0", "33"]  # most time in CUDA first
    # 500 µs of synchronising in a 2 ms window: 250 ms per second
    assert api["decode:0"] == {
        "cudaStreamSynchronize": 250.0,
        "cudaLaunchKernel": 25.0,
        "calls": 2000,
    }
    assert api["resnet50:0"] == {"cudaGraphLaunch": 450.0, "calls": 500}
    assert api["33"] == {"cudaMemcpyAsync": 5.0, "calls": 500}
