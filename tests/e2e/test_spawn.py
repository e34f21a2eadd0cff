"""e2e: the runtime's two ways of making pause and container processes do the same thing.

``kubelet.runtime.spawn`` makes sandboxes and containers either with the C
helper (``pkspawn.c``, started by posix_spawn) or, when no compiler is
available, by forking the Python daemon. The kubelet e2e tests run the
helper (the default); this module runs the same scenario through both and
compares what a process sees from inside: namespaces, hostname, loopback,
environment, working directory, bind-mounted files, an overlay root
filesystem, stdin/stdout/stderr, exit codes, cgroup joins and the error
messages a pod status would carry.

The scenario runs in a child Python process that makes itself a child
subreaper (containers are re-parented to it, as to the runtime daemon),
so pytest itself never becomes one. Each sandbox is its own network
namespace, made and ended here; nothing outside it is touched.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import need

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCENARIO = r"""
import json, os, signal, sys
from kubelet.runtime import linux, pkspawn, spawn

mode, tmp, CGROUP = sys.argv[1], sys.argv[2], sys.argv[3]
linux.set_child_subreaper()
helper = None
if mode == "helper":
    helper, why = pkspawn.ensure(os.path.join(tmp, "bin"))
    assert helper, why
out = {"helper": helper}

def ns(pid, kind):
    return os.readlink(f"/proc/{pid}/ns/{kind}")

def run(spec):
    pid, o, e, i = spawn.spawn_container(spec, helper)
    if i is not None:
        os.write(i, b"from stdin\n")
        os.close(i)
    _, st = os.waitpid(pid, 0)
    data = [b"", b""]
    for k, fd in enumerate((o, e)):
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            data[k] += b
        os.close(fd)
    return {"stdout": data[0].decode(), "stderr": data[1].decode(), "code": os.waitstatus_to_exitcode(st)}

# real cgroups (v1: memory and pids), joined the runtime's way: the new process writes "0" into `tasks`
cgbase = [f"/sys/fs/cgroup/{c}/{CGROUP}" for c in ("memory", "pids")]
for b in cgbase:
    for d in ("sb", "ct"):
        os.makedirs(os.path.join(b, d), exist_ok=True)

def cgroups_of(pid):
    return sorted(l.split(":", 1)[1] for l in open(f"/proc/{pid}/cgroup").read().splitlines()
                  if ":memory:" in l or ":pids:" in l)

sb = spawn.spawn_sandbox(spawn.SandboxSpec(hostname="sbx-" + mode, cgroup_join=[b + "/sb/tasks" for b in cgbase]),
                         helper)
out["sandbox"] = {"cmdline": open(f"/proc/{sb}/cmdline").read().split("\0")[:2],
                  "own_net": ns(sb, "net") != ns(os.getpid(), "net"),
                  "own_uts": ns(sb, "uts") != ns(os.getpid(), "uts"),
                  "own_ipc": ns(sb, "ipc") != ns(os.getpid(), "ipc"),
                  "cgroups": cgroups_of(sb), "pid": str(sb),
                  "session_leader": os.getsid(sb) == sb}
hosts = os.path.join(tmp, "hosts")
with open(hosts, "w") as f:
    f.write("10.9.8.7 from-the-pod\n")
script = ("hostname; cat /etc/hosts; cat /proc/net/dev | grep -c ':'; echo \"$FOO|$PATH|$EMPTY|\"; pwd; "
          "echo $$; readlink /proc/self/ns/net /proc/self/ns/uts /proc/self/ns/ipc /proc/self/ns/pid /proc/self/ns/mnt; "
          "read line; echo got $line; grep -E ':(memory|pids):' /proc/self/cgroup | cut -d: -f2- | sort; "
          "echo to-stderr >&2; exit 7")
out["container"] = run(spawn.ContainerSpec(argv=["sh", "-c", script], env=["FOO=bar=baz", "EMPTY=", "NOEQUALS"],
                                           sandbox_pid=sb, cwd="/tmp", files=[(hosts, "/etc/hosts")],
                                           cgroup_join=[b + "/ct/tasks" for b in cgbase], stdin=True))
out["sandbox_ns"] = [ns(sb, k) for k in ("net", "uts", "ipc")]
out["our_ns"] = [ns(os.getpid(), k) for k in ("pid", "mnt")]
out["host_hosts_untouched"] = "from-the-pod" not in open("/etc/hosts").read()
out["errors"] = {}
for name, kw in (("command", dict(argv=["no-such-command-x"])),
                 ("cwd", dict(argv=["true"], cwd="/no/such/dir")),
                 ("sandbox", dict(argv=["true"], sandbox_pid=999999999))):
    try:
        run(spawn.ContainerSpec(env=[], **{"sandbox_pid": sb, **kw}))
        out["errors"][name] = None
    except spawn.SpawnError as e:
        out["errors"][name] = str(e)
rootfs = os.path.join(tmp, "rootfs")
os.makedirs(os.path.join(rootfs, "bin"))
import shutil
shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
overlay = os.path.join(tmp, "overlay", "c1")
out["rootfs"] = run(spawn.ContainerSpec(argv=["sh", "-c", "echo written > /made-here; busybox ls /; busybox cat /etc/hosts"],
                                        env=[], sandbox_pid=sb, rootfs=rootfs, overlay_dir=overlay,
                                        files=[(hosts, "/etc/hosts")]))
out["rootfs"]["upper"] = sorted(os.listdir(os.path.join(overlay, "upper")))
out["rootfs"]["image_untouched"] = not os.path.exists(os.path.join(rootfs, "made-here"))
host = spawn.spawn_sandbox(spawn.SandboxSpec(hostname="ignored", network="host"), helper)
out["host_mode_same_net"] = ns(host, "net") == ns(os.getpid(), "net")
for p in (sb, host):
    os.kill(p, signal.SIGTERM)
    _, st = os.waitpid(p, 0)
    out.setdefault("pause_exit", []).append(os.waitstatus_to_exitcode(st))
for b in cgbase:
    for d in ("sb", "ct", ""):
        os.rmdir(os.path.join(b, d))
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    need(os.geteuid() == 0, "needs root (namespaces, mounts)")
    need(os.path.exists("/bin/busybox"), "needs /bin/busybox (Debian busybox-static)")
    need(bool(shutil.which("cc") or shutil.which("gcc")), "needs a C compiler (gcc) for the helper")
    need(os.path.isdir("/sys/fs/cgroup/memory") and os.path.isdir("/sys/fs/cgroup/pids"),
         "needs the cgroup v1 memory and pids hierarchies")
    from deploy.procs import kill_cgroup_tree
    out = {}
    cgroup = f"pocketkube/spawn-test-{os.getpid()}"
    try:
        for mode in ("helper", "fork"):
            tmp = str(tmp_path_factory.mktemp(f"spawn-{mode}"))
            done = subprocess.run([sys.executable, "-c", SCENARIO, mode, tmp, cgroup], capture_output=True,
                                  text=True, timeout=120, cwd=ROOT)
            assert done.returncode == 0, done.stderr
            out[mode] = json.loads(done.stdout)
    finally:
        left = kill_cgroup_tree(cgroup)[0]
    assert not left, "the scenario left its cgroups behind"
    out["cgroup"] = cgroup
    return out


@pytest.mark.parametrize("mode", ["helper", "fork"])
def test_sandbox_is_a_pause_process_in_its_own_namespaces(results, mode):
    r = results[mode]
    assert (r["helper"] is not None) == (mode == "helper")
    sb = r["sandbox"]
    assert sb["cmdline"] == ["pause", "infinity"]
    assert sb["own_net"] and sb["own_uts"] and sb["own_ipc"] and sb["session_leader"]
    # it moved itself into both cgroups before it paused
    assert sb["cgroups"] == [f"memory:/{results['cgroup']}/sb", f"pids:/{results['cgroup']}/sb"]
    assert r["host_mode_same_net"]
    assert r["pause_exit"] == [-15, -15]          # SIGTERM ends it, as it ends `sleep`


@pytest.mark.parametrize("mode", ["helper", "fork"])
def test_container_joins_the_sandbox_and_sees_its_own_world(results, mode):
    r = results[mode]
    c = r["container"]
    lines = c["stdout"].splitlines()
    assert lines[0] == f"sbx-{mode}"                                  # the sandbox's uts namespace
    assert lines[1] == "10.9.8.7 from-the-pod"                        # bind-mounted over /etc/hosts
    assert lines[2] == "1"                                            # /proc/net/dev: lo only
    assert lines[3] == "bar=baz|/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin||"
    assert lines[4] == "/tmp"
    assert lines[5] == "1"                                            # pid 1 of its own pid namespace
    net, uts, ipc, pid_ns, mnt = lines[6:11]
    assert [net, uts, ipc] == r["sandbox_ns"]
    assert pid_ns != r["our_ns"][0] and mnt != r["our_ns"][1]
    assert lines[11] == "got from stdin"
    assert lines[12:] == [f"memory:/{results['cgroup']}/ct", f"pids:/{results['cgroup']}/ct"]   # its cgroups
    assert c["stderr"] == "to-stderr\n" and c["code"] == 7
    assert r["host_hosts_untouched"]


@pytest.mark.parametrize("mode", ["helper", "fork"])
def test_errors_before_exec_come_back_as_messages(results, mode):
    e = results[mode]["errors"]
    assert e["command"] == 'exec: "no-such-command-x": No such file or directory'
    assert e["cwd"] == "chdir to /no/such/dir: No such file or directory"
    assert e["sandbox"] == "container: [Errno 2] No such file or directory: '/proc/999999999/ns/ipc'"


@pytest.mark.parametrize("mode", ["helper", "fork"])
def test_image_root_filesystem_under_an_overlay(results, mode):
    r = results[mode]["rootfs"]
    assert r["code"] == 0, r["stderr"]
    listing = r["stdout"].split()
    for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "made-here"):
        assert d in listing
    assert "10.9.8.7 from-the-pod" in r["stdout"]
    assert "made-here" in r["upper"] and r["image_untouched"]


def test_both_ways_agree(results):
    """What differs between the two is only what must: PIDs and namespace identities."""
    def shape(r):
        c = dict(r["container"])
        lines = c.pop("stdout").splitlines()
        return lines[1:6] + lines[11:], c, r["errors"], r["rootfs"]["upper"], r["rootfs"]["code"]
    assert shape(results["helper"]) == shape(results["fork"])
