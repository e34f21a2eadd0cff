"""e2e: a kubelet with no --pod-cidr waits for its Node's spec.podCIDR; --register-network-unavailable; --cni-mtu.

The test plays the controller-manager's node IPAM (it sets ``spec.podCIDR``
once the kubelet says it is waiting) and the network agent (it sets
``NetworkUnavailable=False`` with a strategic patch of ``nodes/status``, as
netd does), so this runs without either. The node namespace's ``cni0`` is
made by the fixture without an MTU, as the launcher does; the kernel then
gives the bridge its ports' MTU. Run as root.
"""
from __future__ import annotations

import re
import threading

import pytest

from api import resources as R
from client.rest import Client
from tests.conftest import need
from tests.e2e.kubelet_cluster import fixture
from tests.e2e.netns import have_root_tools, nsrun, wait_until

pytestmark = pytest.mark.slow

MTU = 1400


@pytest.fixture(scope="module")
def kc(tmp_path_factory):
    ok, why = have_root_tools("iptables-restore", "iptables-save", "nsenter")
    need(ok, why)
    seen: dict = {}

    # KubeletCluster.start() returns once the node is Ready and the kubelet runs, which now needs a pod CIDR:
    # hand it over from a thread once the kubelet waits for it, noting what the Node looked like then.
    def ipam(cluster):
        c = Client(server=cluster.url)
        try:
            wait_until(lambda: "waiting for node node-1's spec.podCIDR" in cluster.kubelet.log(), timeout=60,
                       what="the kubelet waiting for its pod CIDR")
            seen["node"] = c.get(R.NODES, "node-1")
            c.patch(R.NODES, "node-1", {"spec": {"podCIDR": cluster.node.pod_cidr,
                                                 "podCIDRs": [cluster.node.pod_cidr]}})
        except Exception as e:  # noqa: BLE001 - reported by the test
            seen["error"] = e
        finally:
            c.close()

    import tests.e2e.kubelet_cluster as kcmod
    orig_start = kcmod.KubeletCluster.start_kubelet

    def start_kubelet(self):
        args = self.kubelet.args
        i = args.index("--pod-cidr")
        del args[i:i + 2]
        t = threading.Thread(target=ipam, args=(self,), daemon=True)
        t.start()
        orig_start(self)
        t.join(5)
    kcmod.KubeletCluster.start_kubelet = start_kubelet
    try:
        gen = fixture(str(tmp_path_factory.mktemp("kubelet-node")), proxy=False, scheduler=False,
                      kubelet_extra=["--register-network-unavailable", "--cni-mtu", str(MTU)])
        cluster = next(gen)
    finally:
        kcmod.KubeletCluster.start_kubelet = orig_start
    cluster.seen = seen
    yield cluster
    next(gen, None)


def test_registered_tainted_and_network_unavailable_while_waiting(kc):
    assert "error" not in kc.seen, kc.seen.get("error")
    node = kc.seen["node"]
    assert "podCIDR" not in node["spec"]
    assert {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"} in node["spec"]["taints"]
    cond = {c["type"]: c for c in node["status"]["conditions"]}
    assert cond["NetworkUnavailable"]["status"] == "True" and cond["NetworkUnavailable"]["reason"] == "NoNetworkAgent"
    assert "--allocate-node-cidrs" in kc.kubelet.log()
    # The default CNI config took the pod CIDR handed over and the MTU.
    assert re.search(r'"mtu": %d' % MTU, open(f"{kc.root}/cni/net.d/10-pocketkube.conflist").read())
    assert kc.node.pod_cidr in open(f"{kc.root}/cni/net.d/10-pocketkube.conflist").read()


def test_pod_eth0_and_bridge_carry_the_cni_mtu(kc):
    kc.pod("mtu", [{"name": "main", "image": "pocketkube/host", "args": ["sleep", "300"]}], nodeName="node-1")
    pod = kc.wait_running("mtu")
    out = kc.exec_in_pod(pod, "ip", "-o", "link", "show", "eth0").stdout.decode()
    assert f" mtu {MTU} " in out, out
    bridge = nsrun(kc.node.ns, "ip", "-o", "link", "show", "cni0").stdout.decode()
    assert f" mtu {MTU} " in bridge, bridge
    kc.delete_pod("mtu")


def test_heartbeats_leave_the_agents_condition_alone(kc):
    kc.client.patch(R.NODES, "node-1", {"status": {"conditions": [
        {"type": "NetworkUnavailable", "status": "False", "reason": "NetdIsUp", "message": "test plays netd",
         "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
        patch_type="strategic", subresource="status")

    def beat():
        return next(c for c in kc.client.get(R.NODES, "node-1")["status"]["conditions"] if c["type"] == "Ready")[
            "lastHeartbeatTime"]
    first = beat()
    wait_until(lambda: beat() != first, timeout=25, interval=0.5, what="a heartbeat")  # HEARTBEAT is 10 s
    cond = {c["type"]: c for c in kc.client.get(R.NODES, "node-1")["status"]["conditions"]}
    assert cond["NetworkUnavailable"]["status"] == "False" and cond["NetworkUnavailable"]["reason"] == "NetdIsUp"
    assert cond["Ready"]["status"] == "True"
