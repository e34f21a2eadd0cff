"""Traffic policies end to end: NodePort from the outside namespace with externalTrafficPolicy Local and Cluster.

The shared single-node cluster (conftest.Cluster: proxy ``--node-name node-1``)
and its "outside" namespace, linked to the node only. ``Local`` keeps the
client's address and answers only where an endpoint runs on the node
receiving the packet; ``Cluster`` masquerades, so the server sees the node.
An endpoint "on another node" is an Endpoints address with ``nodeName:
node-2`` that points at a real server on this node, so only the rules, not
reachability, can keep traffic from it. Run as root.
"""
from __future__ import annotations

from api import resources as R
from proxy.rules import svl_chain
from tests.e2e.netns import wait_until

HTTP = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_local_policy_keeps_the_client_address(cluster):
    svc = cluster.service("etp-local", {"app": "etp-local"}, HTTP, type="NodePort", externalTrafficPolicy="Local")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    cluster.pod("etp-local-a", {"app": "etp-local"})
    cluster.wait_programmed(svc["spec"]["clusterIP"], 80, ["etp-local-a"])
    svl = svl_chain("default/etp-local:http", "TCP")
    wait_until(lambda: f"-A {svl} " in cluster.node.iptables_save("nat"), what=f"{svl}")
    r = cluster.node.connect(cluster.node.outside_ns, cluster.node.node_out_ip, node_port, count=20)
    assert r["errors"] == {} and r["counts"] == {"etp-local-a": 20}, r
    # No masquerade: the pod sees the outside client's own address.
    assert r["sources"] == {cluster.node.outside_ip: 20}, r


def test_local_policy_without_a_local_endpoint_does_not_answer(cluster):
    # A selector-less service whose one endpoint is "on node-2" (really a server here, so it would answer).
    svc = cluster.service("etp-remote", None, [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
                          type="NodePort", externalTrafficPolicy="Local")
    node_port, vip = svc["spec"]["ports"][0]["nodePort"], svc["spec"]["clusterIP"]
    remote = cluster.node.add_pod("etp-remote-a")
    client = cluster.pod("etp-remote-client", {"app": "client"})
    cluster.client.create(R.ENDPOINTS, {
        "metadata": {"name": "etp-remote", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": remote.ip, "nodeName": "node-2"}],
                     "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}, "default")
    cluster.wait_programmed(vip, 80, ["etp-remote-a"])
    wait_until(lambda: "default/etp-remote:http has no local endpoints" in cluster.node.iptables_save("filter"),
               what="the no-local-endpoints DROP")
    assert svl_chain("default/etp-remote:http", "TCP") not in cluster.node.iptables_save("nat")
    r = cluster.node.connect(cluster.node.outside_ns, cluster.node.node_out_ip, node_port, count=3, per_timeout=1.0)
    # Dropped, not refused: no answer at all (a load balancer's health check would have taken this node out).
    assert r["counts"] == {} and sum(r["errors"].values()) == 3 and "ConnectionRefusedError" not in r["errors"], r
    # Inside the cluster it still works: the cluster IP, and a pod reaching the node port (kube-proxy's
    # short-circuit for pod traffic to external destinations).
    r = cluster.node.connect(client.ns, vip, 80, count=5)
    assert r["counts"] == {"etp-remote-a": 5}, r
    r = cluster.node.connect(client.ns, cluster.node.node_out_ip, node_port, count=5)
    assert r["counts"] == {"etp-remote-a": 5}, r
    # The endpoint moves to this node: the outside is answered, with its own address.
    cluster.client.patch(R.ENDPOINTS, "etp-remote", {"subsets": [{
        "addresses": [{"ip": remote.ip, "nodeName": "node-1"}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}, "default")
    wait_until(lambda: "etp-remote:http has no local endpoints" not in cluster.node.iptables_save("filter"),
               what="the DROP gone")
    r = cluster.node.connect(cluster.node.outside_ns, cluster.node.node_out_ip, node_port, count=5)
    assert r["counts"] == {"etp-remote-a": 5} and r["sources"] == {cluster.node.outside_ip: 5}, r


def test_cluster_policy_masquerades_to_the_node(cluster):
    svc = cluster.service("etp-cluster", {"app": "etp-cluster"}, HTTP, type="NodePort",
                          externalTrafficPolicy="Cluster")
    node_port = svc["spec"]["ports"][0]["nodePort"]
    cluster.pod("etp-cluster-a", {"app": "etp-cluster"})
    cluster.wait_programmed(svc["spec"]["clusterIP"], 80, ["etp-cluster-a"])
    r = cluster.node.connect(cluster.node.outside_ns, cluster.node.node_out_ip, node_port, count=10)
    assert r["errors"] == {} and r["counts"] == {"etp-cluster-a": 10}, r
    # Masqueraded: the reply must come back through the node that received the packet.
    assert r["sources"] == {cluster.node.gateway: 10}, r
