"""NodeUnschedulable and NodeReady: cordoned and not-ready nodes take no new pods.

NodeUnschedulable is upstream's plugin: ``spec.unschedulable: true`` (``kubectl
cordon``) rejects the node unless the pod tolerates the
``node.kubernetes.io/unschedulable:NoSchedule`` taint, with the reason
``node(s) were unschedulable``.

NodeReady mirrors the node lifecycle controller: upstream, that controller
taints a node whose Ready condition is False (``node.kubernetes.io/not-ready``)
or Unknown/missing (``node.kubernetes.io/unreachable``) and TaintToleration
does the rest. pocketkube's controller-manager writes those taints too
(``controllers.nodetaint``); this plugin applies the same rule as a virtual
taint (``NodeInfo.ready_taint``) so that a scheduler without a
controller-manager, or in the moment before the taint is written, decides
the same way. The message a user sees and the tolerations that let
DaemonSet-style pods through are exactly upstream's.
"""
from __future__ import annotations

from api.kinds.node import TAINT_UNSCHEDULABLE
from scheduler.framework import SUCCESS, Status
from scheduler.plugins.tainttoleration import taint_reason, tolerates
from scheduler.types import NodeInfo, PodInfo

UNSCHEDULABLE_TAINT = {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}
REASON_UNSCHEDULABLE = "node(s) were unschedulable"


class NodeUnschedulable:
    name = "NodeUnschedulable"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        if node.unschedulable and not tolerates(pod.tolerations, UNSCHEDULABLE_TAINT):
            return Status.unresolvable(REASON_UNSCHEDULABLE, plugin=self.name)
        return SUCCESS


class NodeReady:
    name = "NodeReady"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        taint = node.ready_taint
        if taint is not None and not tolerates(pod.tolerations, taint):
            return Status.unresolvable(taint_reason(taint), plugin=self.name)
        return SUCCESS
