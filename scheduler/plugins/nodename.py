"""NodeName: a pod that names its node (``spec.nodeName``) fits only there.

The scheduler never picks up such pods (they are already placed), so in
practice this only matters to callers that run the framework on a pod that
carries a node name, e.g. a what-if check; it is here to keep upstream's
filter set complete.
"""
from __future__ import annotations

from scheduler.framework import SKIP, SUCCESS, Status
from scheduler.types import NodeInfo, PodInfo

REASON = "node(s) didn't match the requested node name"


class NodeName:
    name = "NodeName"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def pre_filter(self, pod: PodInfo) -> Status:
        return SUCCESS if pod.node_name else SKIP

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        if pod.node_name and pod.node_name != node.name:
            return Status.unresolvable(REASON, plugin=self.name)
        return SUCCESS
