"""Unit tests: CRI log files, cgroup seams (v1 and v2 on fake trees), the image store."""
from __future__ import annotations

import io
import json
import os
import tarfile
import threading
import time

import pytest

from kubelet.runtime import cgroups as cg
from kubelet.runtime import logs
from kubelet.runtime.images import HOST_IMAGE, ImageError, ImageStore, normalize


# --------------------------------------------------------------------- logs
def test_cri_lines_partial_and_long(tmp_path):
    path = str(tmp_path / "c" / "0.log")
    w = logs.LogWriter(path)
    w.feed("stdout", b"hello\nwor")
    w.feed("stderr", b"oops\n")
    w.feed("stdout", b"ld\n" + b"x" * (logs.MAX_LINE + 5) + b"\n")
    w.feed("stdout", b"no newline")
    w.close()
    lines = open(path, "rb").read().splitlines()
    parsed = [logs.parse_line(x) for x in lines]
    assert [(p[1], p[2], p[3][:10]) for p in parsed] == [
        ("stdout", True, b"hello"), ("stderr", True, b"oops"), ("stdout", True, b"world"),
        ("stdout", False, b"x" * 10), ("stdout", True, b"xxxxx"), ("stdout", False, b"no newline")]
    assert all(p[0].endswith("Z") and "T" in p[0] for p in parsed)
    out = logs.read_logs(path)
    assert out == b"hello\noops\nworld\n" + b"x" * (logs.MAX_LINE + 5) + b"\nno newline"
    assert logs.read_logs(path, tail=2) == b"x" * (logs.MAX_LINE + 5) + b"\nno newline"
    assert logs.read_logs(path, tail=0) == b""
    assert logs.read_logs(path, limit_bytes=8) == b"hello\noo"
    assert logs.read_logs(path, timestamps=True).split(b"\n")[0].endswith(b"Z hello")


def test_rotation_keeps_max_files_and_reader_reads_all(tmp_path):
    path = str(tmp_path / "0.log")
    w = logs.LogWriter(path, max_bytes=1024, max_files=3)
    for i in range(100):
        w.feed("stdout", f"line {i:03d}\n".encode())
    w.close()
    assert os.path.exists(path + ".1") and os.path.exists(path + ".2") and not os.path.exists(path + ".3")
    text = logs.read_logs(path).decode().split()
    nums = [int(x) for x in text if x.isdigit()]
    assert nums == sorted(nums) and nums[-1] == 99 and len(nums) < 100      # oldest rotated away


def test_follow_sees_appends_and_rotation_and_stops(tmp_path):
    path = str(tmp_path / "0.log")
    w = logs.LogWriter(path, max_bytes=300, max_files=2)
    w.feed("stdout", b"first\n")
    running = [True]
    got = []

    size, ino = logs.position(path)

    def reader():
        for chunk in logs.follow(path, size, timestamps=False, still_running=lambda: running[0], poll=0.01,
                                 start_ino=ino):
            got.append(chunk)

    t = threading.Thread(target=reader)
    t.start()
    for i in range(20):
        w.feed("stdout", f"more {i}\n".encode())
        time.sleep(0.01)
    time.sleep(0.1)
    running[0] = False
    t.join(5)
    assert not t.is_alive()
    assert b"".join(got).decode().split("\n")[:-1] == [f"more {i}" for i in range(20)]
    w.close()


# ------------------------------------------------------------------ cgroups
def fake_v1(tmp_path):
    for c in ("memory", "cpu", "pids"):
        os.makedirs(tmp_path / c)
        (tmp_path / c / "cgroup.procs").write_text("")
    return cg.detect("pocketkube/n1", str(tmp_path))


def test_cgroups_v1_limits_on_a_fake_tree(tmp_path):
    g = fake_v1(tmp_path)
    assert isinstance(g, cg.CgroupsV1)
    g.create("podu1")
    g.create("podu1/c1", memory_bytes=64 << 20, cpu_millis=250)
    base = tmp_path / "memory" / "pocketkube" / "n1" / "podu1" / "c1"
    assert (base / "memory.limit_in_bytes").read_text() == str(64 << 20)
    cpu = tmp_path / "cpu" / "pocketkube" / "n1" / "podu1" / "c1"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "25000" and (cpu / "cpu.cfs_period_us").read_text() == "100000"
    # a new process moves itself through each controller's tasks file (no global lock: see cgroups.py)
    assert [f[len(str(tmp_path)) + 1:] for f in g.join_files("podu1/c1")] == \
        [f"{c}/pocketkube/n1/podu1/c1/tasks" for c in ("memory", "cpu", "pids")]
    (base / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    assert g.oom_killed("podu1/c1")
    assert g.list() == ["podu1"]
    for c in ("memory", "cpu", "pids"):          # a real cgroupfs drops its control files with rmdir
        for d, _dirs, files in os.walk(tmp_path / c / "pocketkube"):
            for f in files:
                os.unlink(os.path.join(d, f))
    g.remove("podu1")
    assert not (tmp_path / "memory" / "pocketkube" / "n1" / "podu1").exists()


def test_cgroups_v2_limits_on_a_fake_tree(tmp_path):
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    g = cg.detect("pocketkube/n1", str(tmp_path))
    assert isinstance(g, cg.CgroupsV2)
    # the kernel makes these files in every new cgroup; the fake tree gets them as directories appear
    os.makedirs(tmp_path / "pocketkube" / "n1" / "podu1")
    for d in ("pocketkube", "pocketkube/n1", "pocketkube/n1/podu1"):
        (tmp_path / d / "cgroup.subtree_control").write_text("")
    g.create("podu1/c1", memory_bytes=32 << 20, cpu_millis=1500)
    c1 = tmp_path / "pocketkube" / "n1" / "podu1" / "c1"
    assert (c1 / "memory.max").read_text() == str(32 << 20)
    assert (c1 / "cpu.max").read_text() == "150000 100000"
    assert "+memory" in (tmp_path / "cgroup.subtree_control").read_text()
    assert "+cpu" in (tmp_path / "pocketkube" / "n1" / "podu1" / "cgroup.subtree_control").read_text()
    (c1 / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert g.oom_killed("podu1/c1")
    assert g.join_files("podu1/c1") == [str(c1 / "cgroup.procs")]
    for f in list(c1.iterdir()):
        f.unlink()
    for d in ("pocketkube/n1/podu1",):
        (tmp_path / d / "cgroup.subtree_control").unlink()
    g.remove("podu1")
    assert not (tmp_path / "pocketkube" / "n1" / "podu1").exists()


def test_no_cgroups_is_a_no_op(tmp_path):
    g = cg.detect("x", str(tmp_path))
    assert isinstance(g, cg.NoCgroups) and g.version == 0
    g.create("a", 1, 1)
    assert not g.oom_killed("a") and g.list() == []


# ------------------------------------------------------------------- images
def _tar_bytes(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            t.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            t.addfile(info)
    return buf.getvalue()


def docker_save(path, tags, layers, config) -> None:
    members = {"config.json": json.dumps(config).encode()}
    names = []
    for i, layer in enumerate(layers):
        members[f"l{i}/layer.tar"] = layer
        names.append(f"l{i}/layer.tar")
    members["manifest.json"] = json.dumps([{"Config": "config.json", "RepoTags": tags, "Layers": names}]).encode()
    with open(path, "wb") as f:
        f.write(_tar_bytes(members))


def test_import_docker_save_with_whiteouts(tmp_path):
    l1 = _tar_bytes({"bin/tool": b"#!/bin/sh\n", "etc/old": b"x", "data/a": b"1", "data/b": b"2"},
                    links={"bin/sh": "tool"})
    l2 = _tar_bytes({"etc/.wh.old": b"", "data/.wh..wh..opq": b"", "data/c": b"3"})
    tarball = tmp_path / "img.tar"
    docker_save(tarball, ["example/tool:1.0"], [l1, l2],
                {"config": {"Entrypoint": ["/bin/tool"], "Cmd": ["--help"], "Env": ["A=1"], "WorkingDir": "/data"}})
    store = ImageStore(str(tmp_path / "store"))
    (img,) = store.import_tarball(str(tarball))
    assert img.name == "example/tool:1.0"
    root = img.rootfs
    assert os.path.islink(os.path.join(root, "bin/sh"))
    assert not os.path.exists(os.path.join(root, "etc/old"))
    assert sorted(os.listdir(os.path.join(root, "data"))) == ["c"]
    got = store.resolve("docker.io/library/../example/tool:1.0".replace("library/../", "")) or store.resolve(
        "example/tool:1.0")
    assert got.entrypoint == ["/bin/tool"] and got.cmd == ["--help"] and got.env == ["A=1"]
    assert got.working_dir == "/data"
    assert [i.name for i in store.list()] == [HOST_IMAGE, "example/tool:1.0"]
    assert store.remove("example/tool:1.0") and store.resolve("example/tool:1.0") is None


def test_import_oci_layout_and_errors(tmp_path):
    import gzip
    import hashlib

    layer = gzip.compress(_tar_bytes({"hello": b"hi"}))
    config = json.dumps({"config": {"Cmd": ["/hello"]}}).encode()
    digest = lambda b: "sha256:" + hashlib.sha256(b).hexdigest()  # noqa: E731
    manifest = json.dumps({"config": {"digest": digest(config)}, "layers": [{"digest": digest(layer)}]}).encode()
    index = json.dumps({"manifests": [{"digest": digest(manifest),
                                       "annotations": {"org.opencontainers.image.ref.name": "oci/img:2"}}]}).encode()
    files = {"index.json": index, "oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}
    for b in (layer, config, manifest):
        files["blobs/sha256/" + digest(b).split(":")[1]] = b
    (tmp_path / "oci.tar").write_bytes(_tar_bytes(files))
    store = ImageStore(str(tmp_path / "store"))
    (img,) = store.import_tarball(str(tmp_path / "oci.tar"))
    assert img.name == "oci/img:2" and open(os.path.join(img.rootfs, "hello")).read() == "hi"
    (tmp_path / "junk.tar").write_bytes(_tar_bytes({"x": b"y"}))
    with pytest.raises(ImageError, match="neither"):
        store.import_tarball(str(tmp_path / "junk.tar"))
    (tmp_path / "notar").write_bytes(b"nope")
    with pytest.raises(ImageError, match="not a readable tar"):
        store.import_tarball(str(tmp_path / "notar"))


def test_image_names_normalize():
    assert normalize("busybox") == "busybox:latest"
    assert normalize("docker.io/library/busybox") == "busybox:latest"
    assert normalize("localhost:5000/x") == "localhost:5000/x:latest"
    assert normalize("pocketkube/host") == "pocketkube/host:latest"
    assert ImageStore("/nonexistent").resolve("pocketkube/host").rootfs is None
    assert ImageStore("/nonexistent").resolve("nope") is None
