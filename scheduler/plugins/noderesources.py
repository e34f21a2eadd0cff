"""NodeResourcesFit (filter) and the two resource scores, LeastAllocated and BalancedAllocation.

Fit compares the pod's requests (``PodInfo.requests``: containers summed,
init containers as a maximum, sidecars and overhead added) with what is left
of the node's allocatable after the requests of every pod the scheduler
believes is there, bound or just assumed. All numbers are integers (cpu in
millicores), so "fits to the last millicore" is an exact comparison. One
node can fail for several reasons at once; each is reported, as upstream:
``Too many pods``, ``Insufficient cpu``, ``Insufficient memory``,
``Insufficient ephemeral-storage``, ``Insufficient <extended resource>``.

The scores use the non-zero requests (pods that ask for nothing count as
100m / 200Mi) so that even empty pods spread:

* LeastAllocated: the mean over cpu and memory of free/allocatable after
  placing the pod, 0..100; emptier nodes win.
* BalancedAllocation: 100 * (1 - |cpu fraction - memory fraction| / 2), the
  standard deviation of the two fractions; nodes whose cpu and memory fill
  at the same rate win, which leaves room for pods of either shape.
"""
from __future__ import annotations

from scheduler.framework import MAX_NODE_SCORE, SUCCESS, Status
from scheduler.types import NodeInfo, PodInfo


class NodeResourcesFit:
    name = "NodeResourcesFit"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        reasons = None
        if len(node.pods) + 1 > node.allowed_pods:
            reasons = ["Too many pods"]
        r = pod.requests
        alloc = node.allocatable
        used = node.requested
        if r.milli_cpu and r.milli_cpu > alloc.milli_cpu - used.milli_cpu:
            reasons = (reasons or []) + ["Insufficient cpu"]
        if r.memory and r.memory > alloc.memory - used.memory:
            reasons = (reasons or []) + ["Insufficient memory"]
        if r.ephemeral_storage and r.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage:
            reasons = (reasons or []) + ["Insufficient ephemeral-storage"]
        if r.scalar:
            for name, want in sorted(r.scalar.items()):
                if want and want > alloc.scalar.get(name, 0) - used.scalar.get(name, 0):
                    reasons = (reasons or []) + [f"Insufficient {name}"]
        if reasons:
            return Status.unschedulable(*reasons, plugin=self.name)
        return SUCCESS


def _least(requested: int, capacity: int) -> int:
    if capacity <= 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


# The two scores below run for every feasible node of every pod, so they are
# written inline (no helper calls): this is the scheduler's hottest code.
class LeastAllocated:
    name = "LeastAllocated"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        alloc = node.allocatable
        cap = alloc.milli_cpu
        req = node.non_zero_cpu + pod.non_zero_cpu
        cpu = (cap - req) * MAX_NODE_SCORE // cap if 0 < cap and req <= cap else 0
        cap = alloc.memory
        req = node.non_zero_memory + pod.non_zero_memory
        mem = (cap - req) * MAX_NODE_SCORE // cap if 0 < cap and req <= cap else 0
        return (cpu + mem) // 2


class BalancedAllocation:
    name = "BalancedAllocation"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        alloc = node.allocatable
        cpu_cap = alloc.milli_cpu
        mem_cap = alloc.memory
        if cpu_cap <= 0 or mem_cap <= 0:
            return 0
        cpu = (node.non_zero_cpu + pod.non_zero_cpu) / cpu_cap
        mem = (node.non_zero_memory + pod.non_zero_memory) / mem_cap
        if cpu > 1.0:
            cpu = 1.0
        if mem > 1.0:
            mem = 1.0
        diff = cpu - mem if cpu > mem else mem - cpu
        return int((1 - diff / 2) * MAX_NODE_SCORE)
