from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from torchweir.bench import ThreadTarget
from torchweir.bench.cli import add_arguments, main

IDENTITY = """
[echo]
backend = "Identity"
max = 8
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "echo.toml"
    path.write_text(IDENTITY)
    return path


def bench(
    argv: list[str],
    default_target: Callable[[], Any] | None = None,
    naive_factory: Callable[[str | None], Any] | None = None,
) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    status = main(parser.parse_args(argv), default_target, naive_factory, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


QUICK = ["--requests", "30", "--warmup", "0", "--no-progress"]


def cells(line: str) -> list[str]:
    """The cells of a row of the rich table."""
    return [cell.strip() for cell in line.strip().strip("│").split("│")]


def test_bench_prints_a_table_and_writes_json(config: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "results" / "out.json"
    argv = [str(config), "--input", "int", "--clients", "1,3", *QUICK, "--json", str(out_json)]
    status, out, err = bench(argv)
    assert status == 0
    rows = [line for line in out.splitlines() if "torchweir" in line]
    assert [cells(row)[:3] for row in rows] == [
        ["torchweir", "1 client", "30"],
        ["torchweir", "3 clients", "30"],
    ]
    data = json.loads(out_json.read_bytes())
    assert [p["clients"] for p in data["points"]] == [1, 3]
    assert all(p["stats"]["requests"] == 30 for p in data["points"])
    assert data["command"].startswith("torchweir bench")
    assert f"wrote {out_json}" in err


def test_bench_compares_with_the_naive_baseline_in_one_run(config: Path) -> None:
    seen: list[str | None] = []

    def naive(path: str | None) -> ThreadTarget:
        seen.append(path)
        return ThreadTarget(lambda x: x)

    status, out, _ = bench([str(config), "--input", "bytes:8", "--clients", "2", *QUICK,
                            "--baseline", "naive"], naive_factory=naive)  # fmt: skip
    assert status == 0
    assert seen == [str(config)]
    assert [cells(line)[0] for line in out.splitlines() if "2 clients" in line] == [
        "torchweir",
        "naive",
    ]


def test_bench_writes_a_plot(config: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    status, _, _ = bench([str(config), "--input", "int", "--rate", "300", "--seconds", "0.2",
                          "--warmup", "0", "--no-progress", "--plot", str(png)])  # fmt: skip
    assert status == 0
    assert png.read_bytes().startswith(b"\x89PNG")


def test_without_config_the_default_target_and_sample_images_are_used() -> None:
    sizes: set[int] = set()
    target = ThreadTarget(lambda jpeg: sizes.add(len(jpeg)), name="builtin")
    status, out, _ = bench(["--clients", "1", *QUICK], default_target=lambda: target)
    assert status == 0
    assert "builtin" in out
    assert len(sizes) == 8  # the eight bundled JPEGs


def one_line_error(status: int, out: str, err: str) -> str:
    assert status == 2
    assert out == ""
    assert "Traceback" not in err
    (line,) = err.splitlines()
    assert line.startswith("torchweir bench: error: ")
    return line


def test_an_empty_image_folder_is_one_clear_line(config: Path, tmp_path: Path) -> None:
    empty = tmp_path / "photos"
    empty.mkdir()
    line = one_line_error(*bench([str(config), "--images", str(empty), *QUICK]))
    assert f"no images (*.jpg, *.jpeg, *.png) in folder {str(empty)!r}" in line


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[a]\nbackend = "Nope"\n', "node 'a', key 'backend': unknown backend 'Nope'"),
        ("[a\n", "not valid TOML"),
        (None, "cannot read the config"),
    ],
)
def test_a_bad_config_is_one_clear_line(tmp_path: Path, toml: str | None, message: str) -> None:
    path = tmp_path / "bad.toml"
    if toml is not None:
        path.write_text(toml)
    line = one_line_error(*bench([str(path), "--input", "int", *QUICK]))
    assert message in line
    assert str(path) in line


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--input", "int"], "give a CONFIG"),
        (["CONFIG", "--input", "tensor:x"], "bad synthetic input 'tensor:x'"),
        (["CONFIG", "--input", "int", "--baseline", "naive"], "--baseline naive is not available"),
    ],
)
def test_missing_pieces_are_one_clear_line(config: Path, argv: list[str], message: str) -> None:
    argv = [str(config) if a == "CONFIG" else a for a in argv]
    line = one_line_error(*bench([*argv, *QUICK]))
    assert message in line


def test_no_successful_call_exits_1() -> None:
    def broken(x: object) -> object:
        raise OSError("model missing")

    status, out, err = bench(["--clients", "1", *QUICK], lambda: ThreadTarget(broken))
    assert status == 1
    assert "OSError 30" in out
    assert "no call succeeded for naive at 1 client" in err


@pytest.mark.parametrize(
    "argv", [["--clients", "0"], ["--clients", "a,b"], ["--rate", "-1"], ["--seconds", "0"]]
)
def test_bad_option_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        bench(argv)
    assert exit_.value.code == 2


def run_module(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "torchweir.bench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_the_module_reports_an_empty_folder_without_a_traceback(
    config: Path, tmp_path: Path
) -> None:
    proc = run_module(str(config), "--images", str(tmp_path))
    out, err = proc.communicate(timeout=60)
    one_line_error(proc.returncode, out, err)


def test_ctrl_c_prints_what_was_measured_and_exits_130(config: Path) -> None:
    proc = run_module(str(config), "--input", "int", "--clients", "2,4", "--seconds", "60",
                      "--warmup", "0")  # fmt: skip
    assert proc.stderr is not None
    lines = []
    for line in proc.stderr:  # progress lines, since stderr is not a terminal
        lines.append(line)
        if "measuring" in line:
            break
    time.sleep(0.3)  # let the point record some calls; nothing waits on this
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, "".join(lines) + err
    assert "Traceback" not in err
    (row,) = [cells(line) for line in out.splitlines() if "2 clients" in line]
    assert row[0] == "torchweir (interrupted)"
    assert int(row[2].replace(",", "")) > 0
    assert "4 clients" not in out
    assert "Interrupted (Ctrl-C)" in out
    assert "interrupted (Ctrl-C)" in err


def test_the_service_graph_can_spill_gpu_decode_to_cpu_decoders_in_processes() -> None:
    import torch

    from torchweir.bench.resnet50 import CPU_DECODE, service_graph
    from torchweir.graphs.spill import spill_spec

    model = torch.nn.Conv2d(3, 4, 1)
    spec = service_graph(decode="gpu", decode_spill=6, device="cpu", model=model).spec()
    pool = spill_spec(spec.node("decode"))
    assert pool is not None
    assert (pool.backend, pool.instance_num, pool.max) == (CPU_DECODE, 6, 8)
    assert pool.params["executor"] == "process"
    assert pool.params["color"] == "rgb"
    assert (
        "spill"
        not in service_graph(decode="gpu", device="cpu", model=model).spec().node("decode").params
    )
    with pytest.raises(ValueError, match="decode_spill is for GPU decode"):
        service_graph(decode="cpu", decode_spill=2, device="cpu", model=model)
