"""The one ctypes handle on libc, for the Linux calls Python 3.11's ``os`` module lacks (or makes hold the GIL).

Loaded once, at import, so every caller (namespaces, mounts, the runtime's
``sethostname``/``prctl``/``posix_spawn``) shares it and its argument types:
a second ``ctypes.CDLL`` would cost another symbol lookup per function and
could disagree on ``argtypes``. Modules that need a call add its argtypes here
or on this handle next to the call (``kubelet.runtime.linux`` for posix_spawn).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
LIBC.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
LIBC.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
LIBC.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
LIBC.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def check(ret: int, what: str) -> None:
    """Raise the OSError of errno when a libc call returned non-zero."""
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
