"""SelectorSpread: pods of the same Service or the same owner go to different nodes.

Upstream's SelectorSpread (now folded into default PodTopologySpread), by
node: for the pod being placed, collect the selectors of the Services in its
namespace that select it, plus its controller (the ownerReference with
``controller: true``, e.g. its ReplicaSet). A pod on a node is a sibling when
it is in the same namespace, matches every one of those selectors and has
the same controller. Fewer siblings on a node is better: counts are
normalized in reverse so the emptiest node scores 100. A pod with neither a
selecting Service nor a controller skips this plugin.

With only a controller, the per-node sibling count is a lookup in
``NodeInfo.owner_counts`` (kept by the cache); Service selectors need a scan
of the node's pods.
"""
from __future__ import annotations

from typing import Callable, Iterable

from scheduler.framework import SKIP, SUCCESS, Status, default_normalize
from scheduler.types import NodeInfo, PodInfo

ServicesLister = Callable[[str], Iterable[dict]]


def selects(selector: dict, labels: dict) -> bool:
    for k, v in selector.items():
        if labels.get(k) != v:
            return False
    return True


class SelectorSpread:
    name = "SelectorSpread"
    node_local = False  # reads Services too: never memoized

    def __init__(self, services: ServicesLister | None = None):
        self.services = services or (lambda ns: ())

    def selectors_for(self, pod: PodInfo) -> list[dict]:
        out = []
        for svc in self.services(pod.namespace):
            sel = (svc.get("spec") or {}).get("selector") or {}
            if sel and selects(sel, pod.labels):
                out.append(sel)
        return out

    def pre_score(self, pod: PodInfo, nodes) -> Status:
        selectors = self.selectors_for(pod)
        if not selectors and not pod.owner_uid:
            return SKIP
        pod.state[self.name] = (selectors, pod.owner_uid)
        return SUCCESS

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        selectors, owner = pod.state[self.name]
        if not selectors:
            return node.owner_counts.get(owner, 0)
        count = 0
        ns = pod.namespace
        for other in node.pods.values():
            if other.namespace != ns or (owner and other.owner_uid != owner):
                continue
            if (other.obj.get("metadata") or {}).get("deletionTimestamp"):
                continue
            labels = other.labels
            for sel in selectors:
                if not selects(sel, labels):
                    break
            else:
                count += 1
        return count

    def normalize(self, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores, reverse=True)
