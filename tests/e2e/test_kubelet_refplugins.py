"""e2e: the same kubelet with the standard reference CNI plugins instead of pocketkube's own.

A conflist chaining Debian's ``bridge`` (cni0, gateway, hairpin),
``host-local`` IPAM, ``loopback`` and ``portmap`` goes into the kubelet's
``--cni-conf-dir``; pods get addresses from host-local, talk to each other
across the bridge, and a container ``hostPort`` is reachable on the node's
address through portmap's DNAT (rules only in the node namespace).
"""
from __future__ import annotations

import json
import os
import sys

import pytest

from tests.conftest import need
from tests.e2e.kubelet_cluster import fixture
from tests.e2e.netns import have_root_tools, nsrun, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rc(tmp_path_factory):
    ok, why = have_root_tools("iptables-restore", "nsenter")
    need(ok, why)
    need(all(os.path.exists(f"/usr/lib/cni/{p}") for p in ("bridge", "host-local", "loopback", "portmap")),
         "the reference CNI plugins are not installed (apt-get install containernetworking-plugins)")
    tmp = str(tmp_path_factory.mktemp("refcni"))
    conf_dir = os.path.join(tmp, "net.d")
    os.makedirs(conf_dir)
    conflist = {"cniVersion": "1.0.0", "name": "refnet", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "hairpinMode": True, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": os.path.join(tmp, "ipam"),
                  "ranges": [[{"subnet": "10.244.1.0/24", "gateway": "10.244.1.1"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "loopback"}]}
    with open(os.path.join(conf_dir, "10-ref.conflist"), "w") as f:
        json.dump(conflist, f)
    yield from fixture(tmp, proxy=False, cni_conf_dir=conf_dir)


def test_reference_plugins_pod_to_pod_and_host_port(rc):
    rc.pod("ref-a", [{"name": "web", "image": "pocketkube/host", "args": ["python3", "-m", "http.server", "8080"],
                      "ports": [{"containerPort": 8080, "hostPort": 18080}],
                      "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}])
    a = rc.wait_running("ref-a")
    ip = a["status"]["podIP"]
    assert ip.startswith("10.244.1.")
    rc.pod("ref-b", [{"name": "main", "image": "pocketkube/host", "args": ["sh", "-c",
                      f"python3 -c \"import urllib.request as u; print('peer', u.urlopen('http://{ip}:8080/', "
                      f"timeout=5).status)\"; sleep 600"]}])
    rc.wait_running("ref-b")

    def peer_ok():
        text = rc.client.request("GET", "/api/v1/namespaces/default/pods/ref-b/log", raw=True).decode()
        return "peer 200" in text
    wait_until(peer_ok, timeout=20, what="ref-b reaches ref-a")
    # the lease is host-local's own file format in its own data dir
    leases = os.listdir(os.path.join(rc.tmp, "ipam", "refnet"))
    assert ip in leases
    # hostPort through portmap, from the node's own namespace to the node address
    r = nsrun(rc.node.ns, sys.executable, "-c", "import urllib.request as u; "
              f"print(u.urlopen('http://{rc.node.node_ip}:18080/', timeout=5).status)", check=False)
    assert r.stdout.decode().strip() == "200", r
    rc.delete_pod("ref-a")
    rc.delete_pod("ref-b")
    wait_until(lambda: ip not in os.listdir(os.path.join(rc.tmp, "ipam", "refnet")), timeout=10,
               what="host-local lease released")
    # portmap's per-pod chain (CNI-DN-<hash>) went with the pod; its shared chains may stay, as in Kubernetes
    assert "CNI-DN-" not in nsrun(rc.node.ns, "iptables-save", "-t", "nat").stdout.decode()
