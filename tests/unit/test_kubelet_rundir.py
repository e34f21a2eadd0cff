"""kubelet.rundir and nodeutil.mounts: where the run directory's filesystem is found, when a tmpfs is mounted,
what moves there."""
from __future__ import annotations

import os

from kubelet import rundir
from nodeutil import mounts


def _mountinfo(tmp_path, *lines: tuple[str, str]) -> str:
    """A mountinfo file with (mount point, fstype) rows, in mount order (mount points escaped as the kernel does)."""
    p = tmp_path / "mountinfo"
    rows = []
    for i, (point, fstype) in enumerate(lines):
        esc = point.replace("\\", "\\134").replace(" ", "\\040")
        rows.append(f"{20 + i} 1 0:{i} / {esc} rw,relatime shared:{i} - {fstype} src{i} rw")
    p.write_text("\n".join(rows) + "\n")
    return str(p)


def test_mounts_unescape_mount_points(tmp_path):
    mi = _mountinfo(tmp_path, ("/", "ext4"), ("/var/lib/pk dir", "tmpfs"))
    assert mounts.mounts(mi) == [("/", "ext4"), ("/var/lib/pk dir", "tmpfs")]


def test_fs_type_is_the_deepest_and_latest_mount_above_the_path(tmp_path):
    root = os.path.realpath(tmp_path)
    mi = _mountinfo(tmp_path, ("/", "ext4"), (f"{root}/a", "tmpfs"), (f"{root}/a/b", "ext4"), (f"{root}/a", "xfs"))
    assert mounts.fs_type(f"{root}/a/x", mi) == "xfs"             # mounted over the tmpfs later
    assert mounts.fs_type(f"{root}/a/b/c", mi) == "ext4"
    assert mounts.fs_type(f"{root}/ab", mi) == "ext4"             # a name prefix is not a parent directory
    assert mounts.fs_type(f"{root}/a", mi) == "xfs"


def test_ensure_mounts_a_tmpfs_only_where_there_is_none(tmp_path):
    run = str(tmp_path / "kubelet" / "run")
    calls = []
    mi = _mountinfo(tmp_path, ("/", "ext4"))
    assert rundir.ensure(run, mount=lambda *a: calls.append(a), mountinfo=mi) == "mounted"
    assert os.path.isdir(run)
    assert calls == [("pocketkube-run", run, "tmpfs", mounts.MS_NOSUID | mounts.MS_NODEV | mounts.MS_NOEXEC,
                      "mode=0755,size=64m")]
    # a restarted kubelet finds its tmpfs (or the operator's, e.g. /run) and mounts nothing over it
    mi = _mountinfo(tmp_path, ("/", "ext4"), (os.path.realpath(run), "tmpfs"))
    assert rundir.ensure(run, mount=lambda *a: calls.append(a), mountinfo=mi) == "tmpfs"
    assert len(calls) == 1


def test_ensure_falls_back_to_the_directory_when_the_mount_is_refused(tmp_path, caplog):
    def refuse(*_a):
        raise OSError(1, "mount tmpfs: Operation not permitted")
    how = rundir.ensure(str(tmp_path / "run"), mount=refuse, mountinfo=_mountinfo(tmp_path, ("/", "ext4")))
    assert how.startswith("disk: ") and "Operation not permitted" in how
    assert "cannot mount a tmpfs" in caplog.text


def test_unmount_detaches_only_a_tmpfs_mounted_exactly_there(tmp_path):
    run = os.path.realpath(tmp_path / "run")
    calls = []
    mi = _mountinfo(tmp_path, ("/", "ext4"), (run, "tmpfs"))
    assert rundir.unmount(run, umount=lambda *a: calls.append(a), mountinfo=mi)
    assert calls == [(run, mounts.MNT_DETACH)]
    for rows in ((("/", "ext4"),), (("/", "ext4"), (run, "ext4")), (("/", "tmpfs"),)):
        assert not rundir.unmount(run, umount=lambda *a: calls.append(a), mountinfo=_mountinfo(tmp_path, *rows))
    assert len(calls) == 1
    assert not rundir.unmount(run, mountinfo=str(tmp_path / "no-such-file"))


def test_adopt_old_layout_moves_pod_records_and_the_cni_cache_once(tmp_path):
    root, run = tmp_path / "kubelet", tmp_path / "kubelet" / "run"
    (root / "pods" / "uid-1").mkdir(parents=True)
    (root / "pods" / "uid-1" / "network.json").write_text('{"ip": "10.244.1.5"}')
    (root / "cni" / "cache" / "results").mkdir(parents=True)
    (root / "cni" / "cache" / "results" / "pocketkube-abc-eth0").write_text("{}")
    run.mkdir()
    assert rundir.adopt_old_layout(str(root), str(run)) == ["pods", os.path.join("cni", "cache")]
    assert (run / "pods" / "uid-1" / "network.json").read_text() == '{"ip": "10.244.1.5"}'
    assert (run / "cni" / "cache" / "results" / "pocketkube-abc-eth0").exists()
    assert not (root / "pods").exists() and not (root / "cni" / "cache").exists()
    # nothing to move the second time; and what the run directory has is never overwritten
    assert rundir.adopt_old_layout(str(root), str(run)) == []
    (root / "pods" / "uid-2").mkdir(parents=True)
    assert rundir.adopt_old_layout(str(root), str(run)) == []
    assert not (run / "pods" / "uid-2").exists()
    # a run directory that is the root itself (an operator's choice) moves nothing onto itself
    assert rundir.adopt_old_layout(str(root), str(root)) == []
