"""TaintToleration: a node's NoSchedule/NoExecute taints keep out pods that do not tolerate them.

Filter: the first taint with effect NoSchedule or NoExecute that no
toleration of the pod matches rejects the node with Kubernetes' reason
``node(s) had untolerated taint {key: value}`` (UnschedulableAndUnresolvable:
only changing the pod or the node helps).

Score: PreferNoSchedule taints are only a preference. Each one the pod does
not tolerate (counting tolerations whose effect is PreferNoSchedule or empty)
lowers the node's score; counts are normalized in reverse, so the node with
the fewest such taints scores 100.

``tolerates(tolerations, taint)`` is v1.Toleration.ToleratesTaint, shared
with NodeUnschedulable and NodeReady.
"""
from __future__ import annotations

from scheduler.framework import SKIP, SUCCESS, Status, default_normalize
from scheduler.types import NodeInfo, PodInfo


def toleration_matches(tol: dict, taint: dict) -> bool:
    effect = tol.get("effect")
    if effect and effect != taint.get("effect"):
        return False
    key = tol.get("key")
    if key and key != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (tol.get("value") or "") == (taint.get("value") or "")
    return False


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for tol in tolerations:
        if toleration_matches(tol, taint):
            return True
    return False


def taint_reason(taint: dict) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"


class TaintToleration:
    name = "TaintToleration"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        if not node.taints:
            return SUCCESS
        tols = pod.tolerations
        for taint in node.taints:
            if not tols or not tolerates(tols, taint):
                return Status.unresolvable(taint_reason(taint), plugin=self.name)
        return SUCCESS

    def pre_score(self, pod: PodInfo, nodes) -> Status:
        if not any(n.prefer_taints for n in nodes):
            return SKIP
        pod.state[self.name] = [t for t in pod.tolerations if t.get("effect") in (None, "", "PreferNoSchedule")]
        return SUCCESS

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        tols = pod.state.get(self.name, ())
        return sum(1 for t in node.prefer_taints if not tolerates(tols, t))

    def normalize(self, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
