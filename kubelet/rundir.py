"""The kubelet's run directory: the state that describes running sandboxes and dies with them, kept on tmpfs.

For every pod the kubelet writes the pod's ``hosts``, ``hostname`` and
``resolv.conf``, the CNI client the cached result (the pod's one network
record, ``kubelet.sandbox``) and the network plugin an IP lease: small files
made with the pod and deleted with it. None of them means anything after a reboot — the sandboxes they describe
are gone — which is why containerd keeps its task state in ``/run`` and why
host-local leases kept on disk are a known leak after a node restart. On disk
each also costs an inode allocation, and on ext4 without a journal (the
machine this project is measured on) allocating an inode steps over every
inode freed in the last half minute: in a burst of pods that follows
deletions this was the largest single cost in the kubelet (see the README's
kubelet figures).

So these files live in ``--run-dir`` (default ``ROOT/run``), and the kubelet
mounts a tmpfs there unless it already is on one (as ``/run`` is on most
distributions). If the mount is refused (no CAP_SYS_ADMIN) the directory is
used as it is, with a warning. The mount outlives the kubelet on purpose: a
restarted kubelet must find its running pods' records; ``pocketkube down``
and the test fixtures unmount it once the node's pods are gone.

Container logs and the runtime's journal stay under the root directory, on
disk: logs must outlive the pod (``kubectl logs --previous``) and both are
appended to, not created per pod.
"""
from __future__ import annotations

import os
import shutil
from typing import Callable

from nodeutil import mounts

SIZE = "64m"          # ~30 KB per pod: 110 pods use a few MB; tmpfs holds only what is written


def ensure(path: str, *, mount: Callable[..., None] = mounts.mount, mountinfo: str = mounts.MOUNTINFO) -> str:
    """Make ``path`` a directory on tmpfs; returns how: "tmpfs" (already was), "mounted", or "disk: <why>"."""
    return mounts.ensure_tmpfs(path, "pocketkube-run", SIZE, mount_fn=mount, mountinfo=mountinfo)


def unmount(path: str, *, umount: Callable[[str, int], None] = mounts.umount,
            mountinfo: str = mounts.MOUNTINFO) -> bool:
    """Detach the tmpfs ``ensure`` mounted on ``path`` (and only a tmpfs mounted exactly there); True if it did."""
    return mounts.unmount_tmpfs(path, umount_fn=umount, mountinfo=mountinfo)


def adopt_old_layout(root: str, run: str) -> list[str]:
    """Move what an earlier kubelet kept under ``root`` (pods/, cni/cache/) into ``run``; returns what moved.

    Only where ``run`` has nothing of its own yet, so a restart never mixes two generations."""
    moved = []
    for rel in ("pods", os.path.join("cni", "cache")):
        src, dst = os.path.join(root, rel), os.path.join(run, rel)
        if os.path.realpath(src) == os.path.realpath(dst) or not os.path.isdir(src) or os.path.exists(dst):
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.move(src, dst)
        moved.append(rel)
    return moved
