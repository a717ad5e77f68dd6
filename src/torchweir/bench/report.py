"""Reports of a :class:`BenchResult`: a text table, JSON, and a PNG of the latencies.

The table uses rich when it is installed (box drawing, right-aligned numbers) and plain
columns otherwise. The plot draws on a bare matplotlib ``Figure`` (Agg), never through
pyplot, so it changes no global backend and needs no display.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from torchweir.bench.result import BenchResult, Point
from torchweir.errors import ConfigError

__all__ = ["check_plot", "from_json", "plot", "table", "to_json"]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _errors(point: Point) -> str:
    by_type = point.stats.errors_by_type
    return ", ".join(f"{k} {v:,}" for k, v in by_type.items()) if by_type else "0"


def _rows(result: BenchResult) -> tuple[list[str], list[list[str]]]:
    points = result.points
    open_loop = any(p.rate_per_s is not None for p in points)
    gpu = any(p.stats.gpu_util_percent is not None for p in points)
    header = ["target", "load", "calls", "items/s", "mean ms", "TP50 ms", "TP90 ms"]
    header += ["TP99 ms", "max ms", "errors", "CPU %"]
    header += ["late", "dropped", "lag TP99 ms"] if open_loop else []
    header += ["GPU %", "GPU MiB"] if gpu else []
    rows = []
    for p in points:
        s = p.stats
        row = [p.target + (" (interrupted)" if p.interrupted else ""), p.load]
        row += [f"{s.requests:,}", f"{s.qps:,.0f}", _ms(s.mean_ms), _ms(s.p50_ms)]
        row += [_ms(s.p90_ms), _ms(s.p99_ms), _ms(s.max_ms), _errors(p)]
        row += [_opt(s.cpu_percent, ".0f")]
        if open_loop:
            row += [f"{s.late:,}", f"{s.dropped_sends:,}", _ms(s.send_lag_p99_ms)]
        if gpu:
            row += [_opt(s.gpu_util_percent, ".0f"), _opt(s.gpu_mem_mib, ",.0f")]
        rows.append(row)
    return header, rows


def _caption(result: BenchResult) -> str:
    m = result.machine
    parts = [f"{m.get('host', '?')}: {m.get('cpu_count', '?')} CPUs"]
    parts += [", ".join(m["gpus"])] if m.get("gpus") else []
    parts += [f"Python {m.get('python', '?')}", str(m.get("loop", "?"))]
    a = result.args
    window = f"{a['requests']} calls" if a.get("requests") else f"{a.get('seconds', 0):g} s"
    batch = a.get("request_batch", 1)
    text = f"{'; '.join(parts)}. {window} per point, {batch} item(s) per call."
    if result.interrupted:
        text += " Interrupted (Ctrl-C): partial results."
    return text


def table(result: BenchResult, width: int = 200) -> str:
    """The points as a text table, one row per target and load, with the machine below.

    ``calls`` counts the calls that fully succeeded (the ones with a latency); errors are
    failed items, by type. CPU % is this process's, where 100 % is one core.
    """
    header, rows = _rows(result)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        return _plain(header, rows) + "\n" + _caption(result)
    out = Table(caption=_caption(result), caption_justify="left")
    for k, name in enumerate(header):
        out.add_column(name, justify="left" if k < 2 or name == "errors" else "right")
    for row in rows:
        out.add_row(*row)
    console = Console(file=io.StringIO(), width=width, color_system=None, soft_wrap=False)
    console.print(out)
    text: str = console.file.getvalue()  # type: ignore[attr-defined]
    return "\n".join(line.rstrip() for line in text.rstrip("\n").splitlines())


def _plain(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(
            c.rjust(w) if k > 1 else c.ljust(w)
            for k, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in (header, *rows)
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def to_json(result: BenchResult) -> bytes:
    """The whole result as indented JSON, histograms included; :func:`from_json` reads it."""
    return msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n"


def from_json(data: bytes | str) -> BenchResult:
    """A :class:`BenchResult` from :func:`to_json`'s output."""
    return msgspec.json.decode(data, type=BenchResult)


def check_plot() -> None:
    """Fail early, before a long run, if :func:`plot` cannot work.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install matplotlib") from exc


def plot(result: BenchResult, path: str | Path) -> None:
    """Write a PNG: a latency CDF per load, then QPS and TP99 against the load.

    Each CDF panel compares the targets at one load (clients or rate). Its y axis is
    logit-scaled, so TP50, TP90, TP99 and TP99.9 are evenly spaced and the tail shows.

    Raises:
        ConfigError: matplotlib is not installed.
    """
    check_plot()
    from matplotlib.figure import Figure

    loads = list(dict.fromkeys(_load_value(p) for p in result.points))
    ncols = max(2, min(4, len(loads)))
    nrows = math.ceil(len(loads) / ncols) + 1
    fig = Figure(figsize=(4.2 * ncols, 3.6 * nrows), layout="constrained")
    grid = fig.add_gridspec(nrows, ncols)
    colors = {t: f"C{k}" for k, t in enumerate(result.targets)}
    for k, load in enumerate(loads):
        ax = fig.add_subplot(grid[k // ncols, k % ncols])
        points = [p for p in result.points if _load_value(p) == load]
        for p in points:
            _cdf(ax, p, colors[p.target])
        ax.set_title(points[0].load + (" (interrupted)" if points[-1].interrupted else ""))
        _cdf_axes(ax, legend=k == 0)
    half = ncols // 2
    _versus(fig.add_subplot(grid[-1, :half]), result, colors, "qps", "items/s")
    _versus(fig.add_subplot(grid[-1, half:]), result, colors, "p99_ms", "TP99 latency (ms)")
    fig.suptitle(_caption(result), fontsize="small")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def _load_value(p: Point) -> float:
    return p.rate_per_s if p.rate_per_s is not None else float(p.clients or 0)


def _cdf(ax: Any, p: Point, color: str) -> None:
    counts = np.array([b.count for b in p.histogram], dtype=np.float64)
    if not counts.size:
        return
    upper_ms = np.array([1e3 * b.upper_s for b in p.histogram])
    # The logit scale cannot show 1: the last step runs off the top of the panel instead.
    cdf = np.minimum(np.cumsum(counts) / counts.sum(), 0.9999)
    ax.step(upper_ms, cdf, where="post", color=color, label=p.target)


def _cdf_axes(ax: Any, legend: bool) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(_log_ticks(ax.get_xlim()))
    ax.set_yscale("logit")
    ax.set_ylim(0.01, 0.999)
    ax.yaxis.set_major_locator(FixedLocator(_PERCENTILES))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"TP{100 * v:.4g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("percentile")
    ax.grid(True, which="both", alpha=0.3)
    if legend:
        ax.legend(fontsize="small")


_PERCENTILES = [0.1, 0.5, 0.9, 0.99, 0.999]


def _log_ticks(limits: tuple[float, float]) -> Any:
    """Ticks at 1, 2, 5 per decade over two decades or less, else at powers of 10."""
    from matplotlib.ticker import LogLocator

    low, high = limits
    dense = low > 0 and high / low <= 100
    return LogLocator(subs=(1.0, 2.0, 5.0) if dense else (1.0,))


def _versus(ax: Any, result: BenchResult, colors: dict[str, str], field: str, label: str) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    open_loop = any(p.rate_per_s is not None for p in result.points)
    for target in result.targets:
        points = [p for p in result.points if p.target == target]
        ys = [getattr(p.stats, field) for p in points]
        ys = [math.nan if y is None else y for y in ys]
        ax.plot([_load_value(p) for p in points], ys, "o-", color=colors[target], label=target)
    values = sorted({_load_value(p) for p in result.points})
    if values and max(values) > 10 * min(values):
        ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(values))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if field == "p99_ms":
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(_log_ticks(ax.get_ylim()))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())
    else:
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("offered rate (calls/s)" if open_loop else "clients")
    ax.set_ylabel(label)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
