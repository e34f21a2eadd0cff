"""NodePorts: two pods cannot hold the same host port on one node.

A wanted ``(hostIP, protocol, hostPort)`` conflicts with one in use for the
same protocol and port when either side binds the wildcard ``0.0.0.0`` or
both bind the same address, as upstream. ``hostNetwork`` pods claim their
container ports (PodInfo fills that in). Pods without host ports skip the
check entirely.
"""
from __future__ import annotations

from scheduler.framework import SKIP, SUCCESS, Status
from scheduler.types import NodeInfo, PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"
WILDCARD = "0.0.0.0"


def port_conflict(wanted: list[tuple[str, str, int]], node: NodeInfo) -> bool:
    used = node.used_ports
    if not used:
        return False
    for ip, proto, port in wanted:
        ips = used.get((proto, port))
        if not ips:
            continue
        if ip == WILDCARD or WILDCARD in ips or ip in ips:
            return True
    return False


class NodePorts:
    name = "NodePorts"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def pre_filter(self, pod: PodInfo) -> Status:
        return SUCCESS if pod.host_ports else SKIP

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        if pod.host_ports and port_conflict(pod.host_ports, node):
            return Status.unschedulable(REASON, plugin=self.name)
        return SUCCESS
