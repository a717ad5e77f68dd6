"""glibc malloc limits that keep freed image buffers mapped.

glibc serves blocks above 128 KiB with ``mmap``, hands them back to the kernel when they
are freed, and trims the heap once 128 KiB lie free at its top; it raises both limits
only after it sees such a block freed. A decode step allocates and frees a decoded image
(hundreds of kB) per photo, so it kept faulting in fresh, zeroed pages: 145 page faults
per 500-px photo, and a third of a decode instance's time (child processes on an H200
host; instance threads on a 2-core CPU machine went from 1,090 to 1,420 img/s).
:func:`keep_freed_buffers` sets, from the start, the limits glibc's own rule tops out at.
The cost is memory: up to 64 MiB per malloc arena may stay mapped while free.
"""

from __future__ import annotations

import ctypes
import os
import platform

__all__ = ["keep_freed_buffers"]

#: The environment variables with which a user sets these limits himself.
ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
_TRIM_THRESHOLD = 2 * _MMAP_THRESHOLD  # as glibc's adaptive rule sets it


def keep_freed_buffers() -> bool:
    """Set the limits for this process; returns whether they were set.

    They are not set off glibc, nor where the environment sets either limit itself.
    """
    if platform.libc_ver()[0] != "glibc" or any(name in os.environ for name in ENVIRONMENT):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
