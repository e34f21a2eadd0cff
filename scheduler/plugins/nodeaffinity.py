"""NodeAffinity: ``nodeSelector``, required node affinity (filter) and preferred node affinity (score).

Filter, as upstream: every ``nodeSelector`` label must equal the node's, and
if ``requiredDuringSchedulingIgnoredDuringExecution`` is set, at least one of
its ``nodeSelectorTerms`` must match (terms are ORed; the expressions and
fields inside one term are ANDed; an empty term matches nothing). Operators:
``In``, ``NotIn`` (also true when the label is missing), ``Exists``,
``DoesNotExist``, ``Gt`` and ``Lt`` (integer comparison of the label with
the single value; a label that is not an integer does not match).
``matchFields`` supports ``metadata.name``. Failing nodes get
``node(s) didn't match Pod's node affinity/selector``.

Score: the sum of the weights of the ``preferredDuringScheduling...`` terms
a node matches, normalized so the best node scores 100. Terms are compiled
once per scheduling cycle in ``pre_filter``/``pre_score``, not per node.
"""
from __future__ import annotations

from typing import Callable

from scheduler.framework import SKIP, SUCCESS, Status, default_normalize
from scheduler.types import NodeInfo, PodInfo

REASON = "node(s) didn't match Pod's node affinity/selector"

Matcher = Callable[[NodeInfo], bool]


def _never(_: NodeInfo) -> bool:
    return False


def _int(s: object) -> int | None:
    try:
        return int(str(s))
    except (TypeError, ValueError):
        return None


def compile_requirement(req: dict, field: bool = False) -> Matcher:
    """One NodeSelectorRequirement as a predicate on a NodeInfo."""
    key = req.get("key") or ""
    op = req.get("operator") or ""
    values = list(req.get("values") or [])
    if field:
        if key != "metadata.name" or op not in ("In", "NotIn"):
            return _never
        names = set(values)
        if op == "In":
            return lambda n: n.name in names
        return lambda n: n.name not in names
    vals = set(values)
    if op == "In":
        return lambda n: key in n.labels and n.labels[key] in vals
    if op == "NotIn":
        return lambda n: n.labels.get(key) not in vals if key in n.labels else True
    if op == "Exists":
        return lambda n: key in n.labels
    if op == "DoesNotExist":
        return lambda n: key not in n.labels
    if op in ("Gt", "Lt"):
        if len(values) != 1 or _int(values[0]) is None:
            return _never
        bound = _int(values[0])

        def cmp(n: NodeInfo) -> bool:
            v = _int(n.labels.get(key)) if key in n.labels else None
            if v is None:
                return False
            return v > bound if op == "Gt" else v < bound

        return cmp
    return _never


def compile_term(term: dict) -> Matcher:
    """A NodeSelectorTerm: all of its requirements; an empty term matches nothing."""
    reqs = [compile_requirement(r) for r in term.get("matchExpressions") or ()]
    reqs += [compile_requirement(r, field=True) for r in term.get("matchFields") or ()]
    if not reqs:
        return _never
    if len(reqs) == 1:
        return reqs[0]
    return lambda n: all(r(n) for r in reqs)


def _affinity(pod: PodInfo) -> dict:
    return ((pod.spec.get("affinity") or {}).get("nodeAffinity")) or {}


class NodeAffinity:
    name = "NodeAffinity"
    node_local = True  # reads only the pod and the NodeInfo: results may be memoized

    def pre_filter(self, pod: PodInfo) -> Status:
        selector = pod.spec.get("nodeSelector") or {}
        required = _affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
        if not selector and required is None:
            pod.state[self.name] = ((), None)
            return SKIP
        terms = None
        if required is not None:
            terms = [compile_term(t) for t in required.get("nodeSelectorTerms") or ()]
        pod.state[self.name] = (tuple(selector.items()), terms)
        return SUCCESS

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status:
        compiled = pod.state.get(self.name)
        if compiled is None:
            self.pre_filter(pod)
            compiled = pod.state[self.name]
        selector, terms = compiled
        if selector:
            labels = node.labels
            for k, v in selector:
                if labels.get(k) != v:
                    return Status.unresolvable(REASON, plugin=self.name)
        if terms is not None and not any(t(node) for t in terms):
            return Status.unresolvable(REASON, plugin=self.name)
        return SUCCESS

    def pre_score(self, pod: PodInfo, nodes) -> Status:
        preferred = _affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
        terms = [(int(p.get("weight") or 0), compile_term(p.get("preference") or {})) for p in preferred]
        terms = [(w, t) for w, t in terms if w]
        if not terms:
            return SKIP
        pod.state[self.name + "/preferred"] = terms
        return SUCCESS

    def score(self, pod: PodInfo, node: NodeInfo) -> int:
        return sum(w for w, t in pod.state.get(self.name + "/preferred", ()) if t(node))

    def normalize(self, pod: PodInfo, scores: list[int]) -> None:
        default_normalize(scores)
