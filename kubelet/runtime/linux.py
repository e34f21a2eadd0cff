"""The runtime's own Linux calls on the shared libc handle (``nodeutil.libc``): sethostname, prctl, the
loopback ioctl, process start times, and posix_spawn without the GIL.

The runtime's fork path makes sandboxes and containers itself, in a forked
child, with raw calls (``unshare(1)``/``nsenter(1)`` would work too, but
each exec costs a few milliseconds and leaves an extra process between the
runtime and the container, which would then not be the container's parent and
could not collect its exit code); those children fork from the daemon's loop
thread, whose other thread holds no lock they need. Namespaces and mounts are
shared node helpers (``nodeutil.netns``, ``nodeutil.mounts``); what only the
runtime needs is here. ``posix_spawn`` starts the C helper on the daemon's
spawner thread.
"""
from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct

from nodeutil.libc import LIBC, check

PR_SET_CHILD_SUBREAPER = 36

_libc = LIBC
_vp = ctypes.c_void_p
for _name, _args in (("posix_spawn_file_actions_init", [_vp]), ("posix_spawn_file_actions_destroy", [_vp]),
                     ("posix_spawn_file_actions_adddup2", [_vp, ctypes.c_int, ctypes.c_int]),
                     ("posix_spawn_file_actions_addopen", [_vp, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                                           ctypes.c_uint]),
                     ("posix_spawnattr_init", [_vp]), ("posix_spawnattr_destroy", [_vp]),
                     ("posix_spawnattr_setsigdefault", [_vp, _vp]), ("posix_spawnattr_setsigmask", [_vp, _vp]),
                     ("posix_spawnattr_setflags", [_vp, ctypes.c_short]), ("sigemptyset", [_vp]),
                     ("sigaddset", [_vp, ctypes.c_int]),
                     ("posix_spawn", [ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, _vp, _vp, _vp, _vp])):
    getattr(_libc, _name).argtypes = _args
    getattr(_libc, _name).restype = ctypes.c_int


def sethostname(name: str) -> None:
    b = name.encode()
    check(_libc.sethostname(b, len(b)), "sethostname")


def set_child_subreaper() -> None:
    check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


def loopback_up() -> None:
    """``ip link set lo up`` in the current network namespace, with one ioctl."""
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a live process from a reused PID."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


_POSIX_SPAWN_SETSIGDEF, _POSIX_SPAWN_SETSIGMASK = 0x04, 0x08      # glibc's spawn.h
def posix_spawn(path: str, argv: list[str], actions: list[tuple], sigdef: tuple[int, ...]) -> int:
    """libc's posix_spawn with an empty environment, through ctypes, which lets go of the GIL for the
    call: ``os.posix_spawn`` keeps it while the vfork child runs up to its exec (about 0.25 ms alone,
    1–5 ms on a busy node), and the daemon runs the call on a thread of its own so its event loop
    keeps serving meanwhile (``drive_async``'s ``executor``)."""
    lib = _libc
    # opaque glibc structures, allocated generously (80, 336 and 128 bytes on x86-64)
    fa, attr = ctypes.create_string_buffer(512), ctypes.create_string_buffer(1024)
    sigs, none = ctypes.create_string_buffer(256), ctypes.create_string_buffer(256)
    lib.posix_spawn_file_actions_init(fa)
    lib.posix_spawnattr_init(attr)
    try:
        for a in actions:
            if a[0] == os.POSIX_SPAWN_DUP2:
                rc = lib.posix_spawn_file_actions_adddup2(fa, a[1], a[2])
            else:
                rc = lib.posix_spawn_file_actions_addopen(fa, a[1], a[2].encode(), a[3], a[4])
            if rc:
                raise OSError(rc, f"posix_spawn file action: {os.strerror(rc)}")
        lib.sigemptyset(sigs)
        for sig in sigdef:
            lib.sigaddset(sigs, int(sig))
        lib.sigemptyset(none)
        lib.posix_spawnattr_setsigdefault(attr, sigs)
        lib.posix_spawnattr_setsigmask(attr, none)
        lib.posix_spawnattr_setflags(attr, _POSIX_SPAWN_SETSIGDEF | _POSIX_SPAWN_SETSIGMASK)
        cargv = (ctypes.c_char_p * (len(argv) + 1))(*[a.encode() for a in argv], None)
        cenv = (ctypes.c_char_p * 1)(None)
        pid = ctypes.c_int()
        rc = lib.posix_spawn(ctypes.byref(pid), path.encode(), fa, attr, cargv, cenv)
        if rc:
            raise OSError(rc, f"posix_spawn {path}: {os.strerror(rc)}")
        return pid.value
    finally:
        lib.posix_spawn_file_actions_destroy(fa)
        lib.posix_spawnattr_destroy(attr)
