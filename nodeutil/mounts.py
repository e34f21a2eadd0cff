"""Mounts for node agents: ``mount``/``umount`` through libc, the mount table, and a tmpfs ensured and detached.

The runtime builds container root filesystems with bind, proc and overlay
mounts; the kubelet keeps its per-pod run-time files on a tmpfs it mounts
itself (``kubelet.rundir`` says why), and ``pocketkube down`` and the test
fixtures detach that tmpfs again. Both ends read ``/proc/self/mountinfo`` to
tell what is mounted where, so the parsing lives here once.

``ensure_tmpfs`` and ``unmount_tmpfs`` are idempotent (a path already on a
tmpfs is left alone; only a tmpfs mounted exactly there is detached) and
take the mount call as a parameter (``mount_fn``/``umount_fn``), so callers test their decisions without
root.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

from nodeutil.libc import LIBC, check

log = logging.getLogger("nodeutil.mounts")

MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MNT_DETACH = 0x2

MOUNTINFO = "/proc/self/mountinfo"


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    check(LIBC.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                     flags, data.encode() if data else None), f"mount {source or fstype} on {target}")


def umount(target: str, flags: int = 0) -> None:
    check(LIBC.umount2(target.encode(), flags), f"umount {target}")


def _unescape(field: str) -> str:
    """Mount points in mountinfo escape space, tab, newline and backslash as octal."""
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts(mountinfo: str = MOUNTINFO) -> list[tuple[str, str]]:
    """(mount point, filesystem type) of every mount in this mount namespace, in mount order."""
    out = []
    with open(mountinfo) as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields = pre.split()
            if len(fields) >= 5 and post:
                out.append((_unescape(fields[4]), post.split()[0]))
    return out


def fs_type(path: str, mountinfo: str = MOUNTINFO) -> str:
    """The filesystem type ``path`` is on: that of the last-mounted, longest mount point above it."""
    path = os.path.realpath(path)
    best, kind = "", ""
    for point, fstype in mounts(mountinfo):
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def ensure_tmpfs(path: str, source: str, size: str, *, mount_fn: Callable[..., None] = mount,
                 mountinfo: str = MOUNTINFO) -> str:
    """Make ``path`` a directory on tmpfs (nosuid, nodev, noexec, mode 0755, at most ``size``).

    Returns how: "tmpfs" (already was), "mounted", or "disk: <why>" when the
    mount was refused (no CAP_SYS_ADMIN), logged as a warning."""
    os.makedirs(path, mode=0o755, exist_ok=True)
    if fs_type(path, mountinfo) == "tmpfs":
        return "tmpfs"
    try:
        mount_fn(source, path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"mode=0755,size={size}")
    except OSError as e:
        log.warning("cannot mount a tmpfs on %s (%s): what goes there stays on its filesystem", path, e)
        return f"disk: {e}"
    return "mounted"


def unmount_tmpfs(path: str, *, umount_fn: Callable[[str, int], None] = umount,
                  mountinfo: str = MOUNTINFO) -> bool:
    """Detach a tmpfs mounted exactly on ``path`` (and nothing else); True if it did."""
    path = os.path.realpath(path)
    try:
        here = [t for p, t in mounts(mountinfo) if p == path]
    except OSError:
        return False
    if not here or here[-1] != "tmpfs":
        return False
    umount_fn(path, MNT_DETACH)
    return True
