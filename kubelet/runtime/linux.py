"""The Linux calls Python 3.11's ``os`` module lacks (or makes hold the GIL), through one libc handle:
unshare, setns, mount, umount, sethostname, prctl, and posix_spawn without the GIL.

The runtime's fork path makes sandboxes and containers itself, in a forked
child, with these raw calls (``unshare(1)``/``nsenter(1)`` would work too, but
each exec costs a few milliseconds and leaves an extra process between the
runtime and the container, which would then not be the container's parent and
could not collect its exit code); those children fork from the daemon's loop
thread, whose other thread holds no lock they need. ``posix_spawn`` starts the
C helper on the daemon's spawner thread; the kubelet uses mount/umount for its
run directory.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import os
import socket
import struct
import threading

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000
CLONE_NEWPID = 0x20000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
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


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(path: str, nstype: int = 0) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, nstype), f"setns {path}")
    finally:
        os.close(fd)


def read_ready(fd: int) -> bytes | None:
    """What a non-blocking pipe or pty has: data, b"" at the end (EOF, or EIO on a pty whose
    process is gone), None when nothing is there yet (a spurious wake-up)."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def socket_in_netns(path: str, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket created inside the network namespace at ``path`` (FileNotFoundError if it is gone).

    A socket belongs to the namespace it was made in, and setns changes only
    the calling thread, so a throwaway thread enters the namespace, makes the
    socket and ends: the caller's threads never change namespace.
    """
    box: dict = {}

    def run() -> None:
        try:
            setns(path, CLONE_NEWNET)
            box["sock"] = socket.socket(family, type, proto)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, name="setns-socket", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["sock"]


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                       flags, data.encode() if data else None), f"mount {source or fstype} on {target}")


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(target.encode(), flags), f"umount {target}")


def sethostname(name: str) -> None:
    b = name.encode()
    _check(_libc.sethostname(b, len(b)), "sethostname")


def set_child_subreaper() -> None:
    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


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
