"""Per-thread GIL accounting from the ``gil_accounting/`` LD_PRELOAD shim.

Under load an instance thread pays for every time torch lets go of the GIL: it must win
it back from the event loop and the other instances. Freeing a tensor that Python holds
is one such round trip too (torch frees it with the GIL released), so a kernel pays per
op it calls and per tensor object it makes. The shim counts, per thread, the releases
and re-acquisitions made by extension code and the seconds spent re-acquiring. This module
reads them and names the threads, so a profile can say which thread waited how long.

Usage::

    gcc -O2 -shared -fPIC -o /tmp/libgil_accounting.so \\
        benchmarks/gil_accounting/gil_accounting.c -ldl
    LD_PRELOAD=/tmp/libgil_accounting.so python3 benchmarks/gpu_pipeline_profile.py ...

Without the shim, :func:`snapshot` returns ``None`` and profiles leave the report out.

The shim routes each loaded library's calls through its counters by rewriting their GOT
entries, so it works whether the interpreter links ``libpython`` as a shared library or,
as the GPU machine's ``python3`` does, statically. Each :func:`snapshot` installs the
counters again, into the libraries imported since.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any


class _Slot(ctypes.Structure):
    _fields_ = (
        ("tid", ctypes.c_long),
        ("releases", ctypes.c_long),
        ("acquires", ctypes.c_long),
        ("wait_s", ctypes.c_double),
    )


def _library() -> Any:
    process = ctypes.PyDLL(None)  # keeps the GIL: reading must not count itself
    try:
        slots, used = process.gil_accounting_slots, process.gil_accounting_used
        install = process.gil_accounting_install
    except AttributeError:
        return None
    slots.restype = ctypes.POINTER(_Slot)
    used.restype = install.restype = ctypes.c_int
    return slots, used, install


_LIB = _library()

#: thread id -> its name ("tid N" where Python does not know it), releases, acquires, wait_s
Snapshot = dict[int, tuple[str, int, int, float]]


def snapshot() -> Snapshot | None:
    """The counters of every thread seen so far, or None without the shim."""
    if _LIB is None:
        return None
    slots, used, install = _LIB
    if install() < 0:
        raise RuntimeError("the gil_accounting shim cannot install its counters here (x86-64 only)")
    table = slots()
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id}
    return {
        table[i].tid: (
            names.get(table[i].tid, f"tid {table[i].tid}"),
            table[i].releases,
            table[i].acquires,
            table[i].wait_s,
        )
        for i in range(used())
    }


def report(before: Snapshot, after: Snapshot, seconds: float) -> dict[str, dict[str, float]]:
    """Per thread over the window: releases and re-acquisitions per second, the mean wait
    for the GIL in µs and the share of the window spent waiting, longest first."""
    out: dict[str, dict[str, float]] = {}
    for tid, (name, releases, acquires, wait) in after.items():
        _, old_releases, old_acquires, old_wait = before.get(tid, (name, 0, 0, 0.0))
        count = acquires - old_acquires
        if count <= 0:
            continue
        waited = wait - old_wait
        if name in out:  # two threads of one name
            name = f"{name} (tid {tid})"
        out[name] = {
            "releases_per_s": round((releases - old_releases) / seconds),
            "acquires_per_s": round(count / seconds),
            "mean_wait_us": round(1e6 * waited / count, 1),
            "waiting_pct": round(100 * waited / seconds, 1),
        }
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["waiting_pct"]))
