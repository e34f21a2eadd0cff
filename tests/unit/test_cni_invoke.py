"""The kubelet's CNI runtime side against small fake plugin executables (and in-process fakes)."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from kubelet.cni import plugin as our_plugin
from kubelet.cni.invoke import CNI, format_cni_args, install_plugin, write_default_conflist
from nodeutil.netlink import FakeNetlink
from kubelet.cni.types import (ERR_INVALID_CONFIG, ERR_INVALID_ENV, ERR_IO, ERR_NO_CACHED_RESULT, ERR_NO_CONFIG,
                               ERR_PLUGIN_FAILED, ERR_PLUGIN_NOT_FOUND, ERR_PLUGIN_TIMEOUT, CNIError, CNIResult)

FAKE_PLUGIN = r'''#!{python}
import json, os, sys, time
kind = os.path.basename(sys.argv[0])
conf = json.loads(sys.stdin.read() or "{{}}")
cmd = os.environ.get("CNI_COMMAND", "")
with open(conf.get("log", os.devnull), "a") as f:
    f.write(json.dumps({{"type": kind, "command": cmd, "conf": conf,
                        "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}}}) + "\n")
if conf.get("sleep"):
    time.sleep(conf["sleep"])
if conf.get("fail") == cmd:
    print(json.dumps({{"cniVersion": conf.get("cniVersion"), "code": 42, "msg": "fake failure", "details": kind}}))
    sys.exit(1)
if conf.get("crash") == cmd:
    sys.stderr.write("fake plugin fell over\n")
    sys.exit(3)
if conf.get("garbage") == cmd:
    print("this is not json")
    sys.exit(0)
if cmd == "VERSION":
    print(json.dumps({{"cniVersion": conf.get("cniVersion"), "supportedVersions": ["0.4.0", "1.0.0"]}}))
elif cmd == "ADD":
    res = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "interfaces": [], "ips": [], "dns": {{}}}}
    res["interfaces"].append({{"name": kind, "mac": "00:00:00:00:00:01"}})
    if conf.get("ip"):
        res["ips"].append({{"address": conf["ip"], "interface": len(res["interfaces"]) - 1}})
    print(json.dumps(res))
'''


class Env:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.bin2 = tmp_path / "bin2"
        self.conf = tmp_path / "net.d"
        self.cache = tmp_path / "cache"
        self.log = tmp_path / "calls.log"
        for d in (self.bin, self.bin2, self.conf):
            d.mkdir()
        script = FAKE_PLUGIN.format(python=sys.executable)
        for name, where in (("fake-a", self.bin), ("fake-b", self.bin2), ("fake-c", self.bin)):
            p = where / name
            p.write_text(script)
            p.chmod(p.stat().st_mode | stat.S_IXUSR)
        self.cni = CNI(str(self.conf), [str(self.bin), str(self.bin2)], str(self.cache), timeout=20)

    def write(self, plugins, name="net", version="1.0.0", fname="10-net.conflist", **extra):
        plugins = [dict(p, log=str(self.log)) for p in plugins]
        (self.conf / fname).write_text(json.dumps({"cniVersion": version, "name": name, "plugins": plugins, **extra}))

    def calls(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def e(tmp_path):
    return Env(tmp_path)


CHAIN = [{"type": "fake-a", "ip": "10.1.0.5/24"}, {"type": "fake-b"},
         {"type": "fake-c", "capabilities": {"portMappings": True}}]
ARGS = {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web", "K8S_POD_INFRA_CONTAINER_ID": "c1"}


def test_add_runs_the_chain_in_order_with_prev_result_and_caches(e):
    e.write(CHAIN)
    pm = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    r = e.cni.add("c1", "/var/run/netns/x", "eth0", ARGS, runtime_config={"portMappings": pm, "bandwidth": {}})
    assert [i["name"] for i in r.interfaces] == ["fake-a", "fake-b", "fake-c"]
    assert r.pod_ip() == "10.1.0.5"
    calls = e.calls()
    assert [(c["type"], c["command"]) for c in calls] == [("fake-a", "ADD"), ("fake-b", "ADD"), ("fake-c", "ADD")]
    first, second, third = (c["conf"] for c in calls)
    assert first["name"] == "net" and first["cniVersion"] == "1.0.0" and "prevResult" not in first
    assert [i["name"] for i in second["prevResult"]["interfaces"]] == ["fake-a"]
    assert [i["name"] for i in third["prevResult"]["interfaces"]] == ["fake-a", "fake-b"]
    # runtimeConfig only for the capabilities a plugin declares, and only the declared keys.
    assert "runtimeConfig" not in first and third["runtimeConfig"] == {"portMappings": pm}
    env = calls[0]["env"]
    assert env == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x",
                   "CNI_IFNAME": "eth0", "CNI_PATH": f"{e.bin}:{e.bin2}",
                   "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;"
                               "K8S_POD_INFRA_CONTAINER_ID=c1"}
    cached = json.loads((e.cache / "results" / "net-c1-eth0").read_text())
    assert cached["kind"] == "cniCacheV1" and cached["result"] == r.to_dict()
    assert e.cni.cached_result("c1") == r


def test_delete_runs_in_reverse_with_the_cached_result_and_is_idempotent(e):
    e.write(CHAIN)
    r = e.cni.add("c1", "/var/run/netns/x", args=ARGS, runtime_config={"portMappings": [{"hostPort": 1}]})
    e.log.unlink()
    e.cni.delete("c1", "/var/run/netns/x")
    calls = e.calls()
    assert [(c["type"], c["command"]) for c in calls] == [("fake-c", "DEL"), ("fake-b", "DEL"), ("fake-a", "DEL")]
    assert all(c["conf"]["prevResult"] == r.to_dict() for c in calls)
    # Args and capability args come from the cache when the caller (a restarted kubelet) lacks them.
    assert calls[0]["conf"]["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
    assert "K8S_POD_NAME=web" in calls[0]["env"]["CNI_ARGS"]
    assert not (e.cache / "results" / "net-c1-eth0").exists()
    e.log.unlink()
    e.cni.delete("c1", "")  # again, namespace gone: plugins still run, without prevResult
    calls = e.calls()
    assert len(calls) == 3 and all("prevResult" not in c["conf"] for c in calls)
    assert calls[0]["env"]["CNI_NETNS"] == ""


def test_plugin_error_json_is_surfaced_and_the_chain_rolled_back(e):
    e.write([CHAIN[0], dict(CHAIN[1], fail="ADD"), CHAIN[2]])
    with pytest.raises(CNIError) as ei:
        e.cni.add("c1", "/var/run/netns/x")
    assert (ei.value.code, ei.value.msg) == (42, "fake failure") and ei.value.details.startswith("fake-b")
    calls = [(c["type"], c["command"]) for c in e.calls()]
    assert calls == [("fake-a", "ADD"), ("fake-b", "ADD"), ("fake-c", "DEL"), ("fake-b", "DEL"), ("fake-a", "DEL")]
    # The rollback DEL gets what was built so far as prevResult.
    assert [i["name"] for i in e.calls()[2]["conf"]["prevResult"]["interfaces"]] == ["fake-a"]
    assert not (e.cache / "results" / "net-c1-eth0").exists()


def test_rollback_failures_are_reported_with_the_original_error(e):
    e.write([dict(CHAIN[0], fail="DEL"), dict(CHAIN[1], crash="ADD")])
    with pytest.raises(CNIError) as ei:
        e.cni.add("c1", "/var/run/netns/x")
    assert ei.value.code == ERR_PLUGIN_FAILED and "exit status 3" in ei.value.msg
    assert "fake plugin fell over" in ei.value.details and "rollback: fake-a DEL" in ei.value.details


def test_non_json_success_output_is_an_error(e):
    e.write([dict(CHAIN[0], garbage="ADD")])
    with pytest.raises(CNIError) as ei:
        e.cni.add("c1", "/var/run/netns/x")
    assert ei.value.code == ERR_PLUGIN_FAILED and "invalid ADD result" in ei.value.msg


def test_delete_error_keeps_the_cache_for_a_retry(e):
    e.write(CHAIN)
    e.cni.add("c1", "/ns")
    e.write([CHAIN[0], dict(CHAIN[1], fail="DEL"), CHAIN[2]])
    with pytest.raises(CNIError):
        e.cni.delete("c1", "/ns")
    assert (e.cache / "results" / "net-c1-eth0").exists()
    e.write(CHAIN)
    e.cni.delete("c1", "/ns")
    assert not (e.cache / "results" / "net-c1-eth0").exists()


def test_missing_plugin_names_the_type_and_dirs(e):
    e.write([{"type": "nope"}])
    with pytest.raises(CNIError) as ei:
        e.cni.add("c1", "/ns")
    assert ei.value.code == ERR_PLUGIN_NOT_FOUND and '"nope"' in ei.value.msg
    assert str(e.bin) in ei.value.details and str(e.bin2) in ei.value.details


def test_plugin_timeout(e):
    e.cni.timeout = 0.5
    e.write([{"type": "fake-a", "sleep": 30}])
    t = time.monotonic()
    with pytest.raises(CNIError) as ei:
        e.cni.add("c1", "/ns")
    assert ei.value.code == ERR_PLUGIN_TIMEOUT and "timed out" in ei.value.msg
    assert time.monotonic() - t < 15  # the ADD, then the rollback DEL: both cut short


def test_config_lookup(e):
    with pytest.raises(CNIError) as ei:
        e.cni.load()
    assert ei.value.code == ERR_NO_CONFIG and str(e.conf) in ei.value.msg
    missing = CNI(str(e.tmp / "nowhere"), [], str(e.cache))
    with pytest.raises(CNIError, match="nowhere"):
        missing.load()
    (e.conf / "README").write_text("ignored")
    e.write([{"type": "fake-b"}], name="second", fname="20-second.conflist")
    (e.conf / "05-first.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "first", "type": "fake-a"}))
    nc = e.cni.load()
    assert nc.name == "first" and nc.plugins == [{"type": "fake-a"}] and nc.source.endswith("05-first.conf")
    (e.conf / "01-broken.json").write_text("{")
    with pytest.raises(CNIError) as ei:
        e.cni.load()
    assert ei.value.code == ERR_INVALID_CONFIG and "01-broken.json" in ei.value.msg


def test_delete_falls_back_to_the_cached_config_when_the_config_is_gone(e):
    e.write(CHAIN)
    e.cni.add("c1", "/ns")
    (e.conf / "10-net.conflist").unlink()
    e.log.unlink()
    restarted = CNI(str(e.conf), [str(e.bin), str(e.bin2)], str(e.cache))  # a new kubelet, same dirs
    assert [(c.network, c.container_id, c.ifname, c.netns) for c in restarted.cached()] == [("net", "c1", "eth0",
                                                                                              "/ns")]
    restarted.delete("c1", "/ns")
    assert [c["type"] for c in e.calls()] == ["fake-c", "fake-b", "fake-a"]
    assert restarted.cached() == []
    with pytest.raises(CNIError) as ei:  # nothing cached, nothing configured: say so
        restarted.delete("c1", "/ns")
    assert ei.value.code == ERR_NO_CONFIG


def test_check_uses_the_cached_result(e):
    e.write(CHAIN)
    with pytest.raises(CNIError) as ei:
        e.cni.check("c1", "/ns")
    assert ei.value.code == ERR_NO_CACHED_RESULT
    r = e.cni.add("c1", "/ns")
    e.log.unlink()
    e.cni.check("c1", "/ns")
    calls = e.calls()
    assert [(c["type"], c["command"]) for c in calls] == [("fake-a", "CHECK"), ("fake-b", "CHECK"),
                                                          ("fake-c", "CHECK")]
    assert all(c["conf"]["prevResult"] == r.to_dict() for c in calls)
    e.write([dict(CHAIN[0], fail="CHECK")])
    with pytest.raises(CNIError, match="fake failure"):
        e.cni.check("c1", "/ns")
    e.write(CHAIN, disableCheck=True)
    e.cni.check("c1", "/ns")  # disabled: nothing runs
    e.write(CHAIN, version="0.3.1")
    with pytest.raises(CNIError, match="0.4.0"):
        e.cni.check("c1", "/ns")


def test_version(e):
    assert e.cni.version("fake-b")["supportedVersions"] == ["0.4.0", "1.0.0"]
    with pytest.raises(CNIError):
        e.cni.version("nope")


def test_bad_arguments(e):
    e.write(CHAIN)
    with pytest.raises(CNIError) as ei:
        e.cni.add("bad/id", "/ns")
    assert ei.value.code == ERR_INVALID_ENV
    with pytest.raises(CNIError):
        e.cni.add("c1", "")
    with pytest.raises(CNIError, match="CNI_ARGS"):
        e.cni.add("c1", "/ns", args={"A": "x;y"})
    assert format_cni_args(None) == "" and format_cni_args({"IgnoreUnknown": "0", "A": "b"}) == "IgnoreUnknown=0;A=b"


def test_in_process_plugin_gets_the_same_request_and_runs_concurrently(e):
    seen = []
    lock = threading.Lock()
    all_inside = threading.Barrier(8, timeout=20)  # passes only if 8 ADDs run at the same time

    def fake_main(env, stdin):
        conf = json.loads(stdin)
        with lock:
            seen.append((dict(env), conf))
            n = len(seen)
        all_inside.wait()
        return 0, json.dumps({"cniVersion": conf["cniVersion"], "interfaces": [{"name": "eth0"}],
                              "ips": [{"address": f"10.0.0.{n + 1}/24"}]}).encode()

    e.write([{"type": "pocketkube-bridge", "bridge": "cni0"}])
    cni = CNI(str(e.conf), [str(e.bin)], str(e.cache), in_process_plugins={"pocketkube-bridge": fake_main})
    results = {}

    def add(i):
        results[i] = cni.add(f"c{i}", f"/proc/{i}/ns/net", args=ARGS).pod_ip()

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert len(set(results.values())) == 8
    env, conf = seen[0]
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_IFNAME"] == "eth0" and "K8S_POD_NAME=web" in env["CNI_ARGS"]
    assert conf == {"type": "pocketkube-bridge", "bridge": "cni0", "log": str(e.log), "name": "net",
                    "cniVersion": "1.0.0"}
    assert len(cni.cached()) == 8
    # With in_process=False the type must be an executable in the bin dirs.
    with pytest.raises(CNIError, match="pocketkube-bridge"):
        CNI(str(e.conf), [str(e.bin)], str(e.cache), in_process=False).add("c99", "/ns")


def test_our_plugin_in_process_on_a_fake_netlink(e, tmp_path):
    nl = FakeNetlink({"/ns/a"})
    write_default_conflist(str(e.conf), "10.244.7.0/24", data_dir=str(tmp_path / "ipam"))
    cni = CNI(str(e.conf), [], str(e.cache),
              in_process_plugins={"pocketkube-bridge": lambda env, stdin: our_plugin.main(env, stdin, netlink=nl)})
    r = cni.add("c1", "/ns/a", args=ARGS)
    assert r.pod_ip() == "10.244.7.2" and r.ips[0]["gateway"] == "10.244.7.1"
    cni.check("c1", "/ns/a")
    cni.delete("c1", "/ns/a")
    cni.delete("c1", "/ns/a")
    assert os.listdir(tmp_path / "ipam" / "networks" / "pocketkube") == ["last_reserved_ip.0"]


def test_default_conflist_and_installed_shim(e):
    path = write_default_conflist(str(e.conf), "10.244.3.0/24", bridge="br9")
    assert path.endswith("10-pocketkube.conflist")
    nc = e.cni.load()
    assert nc.name == "pocketkube" and nc.cni_version == "1.0.0"
    (p,) = nc.plugins
    assert p["type"] == "pocketkube-bridge" and p["bridge"] == "br9" and p["hairpinMode"] is True
    assert p["ipam"] == {"type": "host-local", "subnet": "10.244.3.0/24", "gateway": "10.244.3.1"}
    shim = install_plugin(str(e.bin))
    assert os.access(shim, os.X_OK) and open(shim).read().startswith("#!/bin/sh\n")
    # The shim works from anywhere, with a bare environment, found through CNI_PATH.
    cni = CNI(str(e.conf), [str(e.bin)], str(e.cache), in_process=False)
    assert "1.0.0" in cni.version("pocketkube-bridge")["supportedVersions"]
    p = subprocess.run([shim], input=b"{}", env={"CNI_COMMAND": "DEL"}, capture_output=True, cwd="/", timeout=60)
    assert p.returncode != 0 and CNIError.from_json(p.stdout).code == ERR_INVALID_ENV


def test_result_type_of_add(e):
    e.write([CHAIN[0]])
    assert isinstance(e.cni.add("c1", "/ns"), CNIResult)


def test_unwritable_cache_fails_the_add_and_rolls_back(e):
    e.write(CHAIN)
    e.cache.write_text("a file where the cache directory should be")
    with pytest.raises(CNIError) as ei:
        e.cni.add("c1", "/ns")
    assert ei.value.code == ERR_IO and "cannot cache" in ei.value.msg
    assert [(c["type"], c["command"]) for c in e.calls()][3:] == [("fake-c", "DEL"), ("fake-b", "DEL"),
                                                                  ("fake-a", "DEL")]
