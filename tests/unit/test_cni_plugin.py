"""pocketkube-bridge's ADD/DEL/CHECK/VERSION logic against the in-tree fake netlink (no root)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from kubelet.cni import plugin
from nodeutil.netlink import FakeNetlink, bridge_mac
from kubelet.cni.plugin import host_veth_name
from kubelet.cni.types import (ERR_DECODE, ERR_INCOMPATIBLE_VERSION, ERR_INVALID_CONFIG, ERR_INVALID_ENV, ERR_IO,
                               ERR_TRY_AGAIN, ERR_UNKNOWN_CONTAINER, CNIError, CNIResult)

NS_A = "/var/run/netns/pod-a"
NS_B = "/proc/4242/ns/net"


def conf(tmp_path, subnet="10.244.1.0/24", **extra) -> dict:
    c = {"cniVersion": "1.0.0", "name": "pocketkube", "type": "pocketkube-bridge", "bridge": "cni0",
         "ipam": {"type": "host-local", "subnet": subnet, "dataDir": str(tmp_path)}}
    c.update(extra)
    return c


def env(command, cid="c1", netns=NS_A, ifname="eth0"):
    return {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname,
            "CNI_PATH": "/opt/cni/bin", "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p"}


def call(nl, command, c, **kw):
    code, out = plugin.main(env(command, **kw), json.dumps(c).encode(), netlink=nl)
    if code != 0:
        raise CNIError.from_json(out)
    return json.loads(out) if out else None


def leases(tmp_path, net="pocketkube"):
    d = tmp_path / "networks" / net
    return sorted(p.name for p in d.iterdir() if p.name[0].isdigit()) if d.exists() else []


@pytest.fixture
def nl():
    return FakeNetlink({NS_A, NS_B})


def test_add_builds_bridge_veth_and_pod_side(nl, tmp_path):
    out = call(nl, "ADD", conf(tmp_path))
    host = host_veth_name("c1")
    assert host.startswith("veth") and len(host) == 12
    br = nl.links[""]["cni0"]
    assert br.kind == "bridge" and br.up and br.addresses == ["10.244.1.1/24"] and br.mac == bridge_mac("10.244.1.1")
    link = nl.links[""][host]
    assert link.master == "cni0" and link.hairpin and link.up
    pod = nl.links[NS_A]
    assert pod["eth0"].addresses == ["10.244.1.2/24"] and pod["eth0"].up and pod["lo"].up
    assert nl.routes[NS_A] == [("0.0.0.0/0", "10.244.1.1")]
    assert nl.ip_forward
    r = CNIResult.from_dict(out)
    assert r.pod_ip() == "10.244.1.2"
    assert [i["name"] for i in r.interfaces] == ["cni0", host, "eth0"]
    assert r.interfaces[2]["sandbox"] == NS_A and r.ips[0]["interface"] == 2
    assert r.ips[0]["gateway"] == "10.244.1.1"
    assert leases(tmp_path) == ["10.244.1.2"]


def test_add_again_returns_the_same_lease_without_changes(nl, tmp_path):
    first = call(nl, "ADD", conf(tmp_path))
    calls = len([c for c in nl.calls if c[0] == "add_veth"])
    again = call(nl, "ADD", conf(tmp_path))
    assert again == first
    assert len([c for c in nl.calls if c[0] == "add_veth"]) == calls
    assert leases(tmp_path) == ["10.244.1.2"]


def test_add_again_after_a_broken_attempt_rebuilds_the_veth_with_the_same_ip(nl, tmp_path):
    call(nl, "ADD", conf(tmp_path))
    nl.links[NS_A]["eth0"].addresses.clear()  # half-configured pod side
    out = call(nl, "ADD", conf(tmp_path))
    assert CNIResult.from_dict(out).pod_ip() == "10.244.1.2"
    assert nl.links[NS_A]["eth0"].addresses == ["10.244.1.2/24"]
    assert leases(tmp_path) == ["10.244.1.2"]


def test_two_pods_get_two_addresses_and_the_bridge_is_reused(nl, tmp_path):
    call(nl, "ADD", conf(tmp_path))
    out = call(nl, "ADD", conf(tmp_path), cid="c2", netns=NS_B)
    assert CNIResult.from_dict(out).pod_ip() == "10.244.1.3"
    assert nl.links[""]["cni0"].addresses == ["10.244.1.1/24"]
    assert {host_veth_name("c1"), host_veth_name("c2")} <= set(nl.links[""])


def test_del_releases_and_deletes_and_is_idempotent(nl, tmp_path):
    call(nl, "ADD", conf(tmp_path))
    for _ in range(2):
        assert call(nl, "DEL", conf(tmp_path)) is None
    assert leases(tmp_path) == []
    assert host_veth_name("c1") not in nl.links[""] and "eth0" not in nl.links[NS_A]
    assert "cni0" in nl.links[""]  # the bridge is shared; it stays


def test_del_with_the_namespace_gone_or_no_netns_at_all(nl, tmp_path):
    call(nl, "ADD", conf(tmp_path))
    nl.remove_netns(NS_A)
    call(nl, "DEL", conf(tmp_path))
    call(nl, "DEL", conf(tmp_path), netns="")
    assert leases(tmp_path) == [] and host_veth_name("c1") not in nl.links[""]


def test_del_of_something_never_added(nl, tmp_path):
    assert call(nl, "DEL", conf(tmp_path), cid="ghost") is None


@pytest.mark.parametrize("step", ["add_veth", "attach", "configure_pod"])
def test_add_failure_rolls_back_lease_and_veth(nl, tmp_path, step):
    nl.fail[step] = OSError(1, f"boom in {step}")
    with pytest.raises(CNIError) as ei:
        call(nl, "ADD", conf(tmp_path))
    assert ei.value.code == ERR_IO and f"boom in {step}" in ei.value.details
    assert leases(tmp_path) == []
    assert host_veth_name("c1") not in nl.links[""]
    assert "eth0" not in nl.links.get(NS_A, {})
    # And the next attempt works and gets the first address.
    assert CNIResult.from_dict(call(nl, "ADD", conf(tmp_path))).pod_ip() in ("10.244.1.2", "10.244.1.3")


def test_add_failure_keeps_a_lease_that_existed_before(nl, tmp_path):
    call(nl, "ADD", conf(tmp_path))
    nl.links[NS_A]["eth0"].addresses.clear()
    nl.fail["attach"] = OSError(1, "boom")
    with pytest.raises(CNIError):
        call(nl, "ADD", conf(tmp_path))
    assert leases(tmp_path) == ["10.244.1.2"]  # it belonged to an earlier, successful ADD


def test_add_into_missing_netns_is_unknown_container_and_leaks_nothing(nl, tmp_path):
    with pytest.raises(CNIError) as ei:
        call(nl, "ADD", conf(tmp_path), netns="/var/run/netns/gone")
    assert ei.value.code == ERR_UNKNOWN_CONTAINER and "/var/run/netns/gone" in ei.value.msg
    assert leases(tmp_path) == []


def test_exhausted_subnet_is_error_11_and_no_veth(nl, tmp_path):
    c = conf(tmp_path, subnet="10.9.0.0/30")  # one usable address: .2
    call(nl, "ADD", c)
    with pytest.raises(CNIError) as ei:
        call(nl, "ADD", c, cid="c2", netns=NS_B)
    assert ei.value.code == ERR_TRY_AGAIN and "no IP addresses available" in ei.value.msg
    assert host_veth_name("c2") not in nl.links[""]


def test_ipam_routes_and_non_gateway_mode(nl, tmp_path):
    c = conf(tmp_path, isGateway=False, hairpinMode=False)
    c["ipam"]["routes"] = [{"dst": "10.96.0.0/12"}, {"dst": "192.0.2.0/24", "gw": "10.244.1.254"}]
    out = call(nl, "ADD", c)
    assert nl.links[""]["cni0"].addresses == []
    assert not nl.links[""][host_veth_name("c1")].hairpin
    assert nl.routes[NS_A] == [("10.96.0.0/12", "10.244.1.1"), ("192.0.2.0/24", "10.244.1.254")]
    assert "gateway" not in out["ips"][0]


def test_check_passes_then_fails_when_something_is_gone(nl, tmp_path):
    out = call(nl, "ADD", conf(tmp_path))
    c = dict(conf(tmp_path), prevResult=out)
    call(nl, "CHECK", c)
    nl.links[""][host_veth_name("c1")].hairpin = False
    with pytest.raises(CNIError, match="hairpin"):
        call(nl, "CHECK", c)
    nl.delete_link(host_veth_name("c1"))
    with pytest.raises(CNIError, match="missing"):
        call(nl, "CHECK", c)
    with pytest.raises(CNIError, match="prevResult"):
        call(nl, "CHECK", conf(tmp_path))


def test_version_and_result_version_follow_the_config(nl, tmp_path):
    v = call(nl, "VERSION", {"cniVersion": "0.4.0"})
    assert v["cniVersion"] == "0.4.0" and {"0.4.0", "1.0.0"} <= set(v["supportedVersions"])
    out = call(nl, "ADD", dict(conf(tmp_path), cniVersion="0.4.0"))
    assert out["cniVersion"] == "0.4.0" and out["ips"][0]["version"] == "4"


@pytest.mark.parametrize("mutate, code, text", [
    (lambda c, e: c.update(cniVersion="9.9.9"), ERR_INCOMPATIBLE_VERSION, "incompatible"),
    (lambda c, e: c.pop("ipam"), ERR_INVALID_CONFIG, "ipam"),
    (lambda c, e: c["ipam"].update(type="dhcp"), ERR_INVALID_CONFIG, "dhcp"),
    (lambda c, e: c.update(bridge="a-very-long-bridge-name"), ERR_INVALID_CONFIG, "15"),
    (lambda c, e: c.update(mtu=5), ERR_INVALID_CONFIG, "mtu"),
    (lambda c, e: e.update(CNI_CONTAINERID=""), ERR_INVALID_ENV, "CNI_CONTAINERID"),
    (lambda c, e: e.update(CNI_NETNS=""), ERR_INVALID_ENV, "CNI_NETNS"),
    (lambda c, e: e.update(CNI_COMMAND="FROB"), ERR_INVALID_ENV, "FROB"),
])
def test_invalid_requests(nl, tmp_path, mutate, code, text):
    c, e = conf(tmp_path), env("ADD")
    mutate(c, e)
    rc, out = plugin.main(e, json.dumps(c).encode(), netlink=nl)
    err = CNIError.from_json(out)
    assert rc == 1 and err.code == code and text in str(err)
    assert nl.links[""] == {} and leases(tmp_path) == []


def test_undecodable_stdin(nl):
    rc, out = plugin.main(env("ADD"), b"{nope", netlink=nl)
    assert rc == 1 and CNIError.from_json(out).code == ERR_DECODE


def test_executable_answers_version_and_errors_as_json():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = lambda e, stdin: subprocess.run([sys.executable, "-m", "kubelet.cni.plugin"], input=stdin, env=e,  # noqa
                                          capture_output=True, timeout=60, cwd=root)
    p = run({"CNI_COMMAND": "VERSION", "PYTHONPATH": root}, b'{"cniVersion": "1.0.0"}')
    assert p.returncode == 0 and "1.0.0" in json.loads(p.stdout)["supportedVersions"]
    p = run({"CNI_COMMAND": "ADD", "PYTHONPATH": root}, b'{"cniVersion": "1.0.0", "name": "n"}')
    assert p.returncode != 0 and CNIError.from_json(p.stdout).code == ERR_INVALID_ENV
