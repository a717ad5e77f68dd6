"""The GIL switch interval while runtimes run.

A thread that comes back from a C call (cv2, torch) must win the GIL again. If another
thread is busy in Python, CPython makes it wait up to the switch interval (5 ms by
default) before asking the holder to let go. With a dozen decode instances returning
from OpenCV thousands of times a second, those waits, not the decoding, set the pace.
A shorter interval bounds them. The setting is process-wide, so it is lowered while any
runtime that asked for it runs and restored when the last one closes.
"""

from __future__ import annotations

import sys
import threading

__all__ = ["lower_switch_interval", "restore_switch_interval"]

_lock = threading.Lock()
_holders = 0
_saved: float | None = None


def lower_switch_interval(seconds: float) -> None:
    """Lower the interval to ``seconds`` (never raise it) until the matching restore."""
    global _holders, _saved
    if not seconds > 0:
        raise ValueError(f"switch_interval must be > 0 seconds, got {seconds!r}")
    with _lock:
        if _holders == 0:
            _saved = sys.getswitchinterval()
        _holders += 1
        if seconds < sys.getswitchinterval():
            sys.setswitchinterval(seconds)


def restore_switch_interval() -> None:
    """Undo one :func:`lower_switch_interval`; the last one restores the original."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            return
        _holders -= 1
        if _holders == 0 and _saved is not None:
            sys.setswitchinterval(_saved)
            _saved = None
