"""The scheduling framework: tiny plugin protocols and the algorithm that runs them.

kube-scheduler's framework in miniature (docs/design.md, style 6). A placement
decision is two questions asked of every node:

* **Filter** - can this pod run here at all? Each ``FilterPlugin.filter(pod,
  node_info)`` returns a ``Status``: ``Success``, or ``Unschedulable`` /
  ``UnschedulableAndUnresolvable`` with a human reason ("Insufficient cpu"),
  or ``Error`` when the plugin itself failed. The first failing plugin
  decides a node's status, as in Kubernetes.
* **Score** - among the nodes that pass, which is best? Each
  ``ScorePlugin.score(pod, node_info)`` returns 0..100; the framework adds
  them up times each plugin's weight and picks the highest total, breaking
  ties at random so identical nodes fill evenly.

Optional hooks mirror Kubernetes' extension points and are looked up with
``getattr`` so a plugin only writes what it needs: ``pre_filter(pod)`` (may
reject the pod outright, or return ``SKIP`` when the pod asks nothing of this
plugin - no host ports, no affinity - so its filter is not called on any
node), ``pre_score(pod, nodes)`` (return ``SKIP`` when the
plugin has nothing to say about this pod, which saves a pass over the nodes)
and ``normalize(pod, scores)`` (rescale raw scores in place to 0..100, e.g.
"fewest matching pods" -> 100).

When no node passes, ``FitError.message`` is the Kubernetes text, a histogram
of the reasons: ``0/3 nodes are available: 2 Insufficient cpu, 1 node(s) had
untolerated taint {dedicated: gpu}.`` Reasons are listed most frequent first
(ties alphabetically); upstream sorts the "N reason" strings as text, which
orders by the first digit of the count and reads worse, so we follow the
issue's form.

Pods come in batches of identical copies (a Deployment scaling up), and
between two such pods only the node that took the previous one changed.
Plugins whose answer depends only on the pod and the NodeInfo declare
``node_local = True``; the framework memoizes their results per *pod class*
(namespace, labels, owner and spec, serialized) and node *generation* (a
counter bumped on every change to the node or its pods, never reused), so the
next identical pod re-runs them only on nodes that changed. This is
upstream's old equivalence cache reduced to the safe part: plugins that read
anything else (SelectorSpread reads Services) are always called, and
normalization, weights and tie-breaking run every time.

Like upstream (``percentageOfNodesToScore``), large clusters are not
exhaustively searched: filtering stops once enough feasible nodes are found
(all nodes up to 100, then an adaptive share, never fewer than 100), starting
where the previous cycle stopped so every node gets its turn.
"""
from __future__ import annotations

import enum
import random
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol, Sequence, runtime_checkable

import orjson

from scheduler.types import NodeInfo, PodInfo

MAX_NODE_SCORE = 100
MEMO_CLASSES = 128
MIN_FEASIBLE_NODES_TO_FIND = 100
MIN_FEASIBLE_NODES_PERCENTAGE = 5
NO_NODES_MESSAGE = "no nodes available to schedule pods"


class Code(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    SKIP = 4


@dataclass(frozen=True, slots=True)
class Status:
    """The answer of one plugin: a code and the human reasons behind it."""

    code: Code = Code.SUCCESS
    reasons: tuple[str, ...] = ()
    plugin: str = ""

    @property
    def ok(self) -> bool:
        return self.code == Code.SUCCESS

    @property
    def is_unschedulable(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    @property
    def message(self) -> str:
        return ", ".join(self.reasons)

    @classmethod
    def unschedulable(cls, *reasons: str, plugin: str = "") -> "Status":
        return cls(Code.UNSCHEDULABLE, tuple(reasons), plugin)

    @classmethod
    def unresolvable(cls, *reasons: str, plugin: str = "") -> "Status":
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, tuple(reasons), plugin)

    @classmethod
    def error(cls, reason: str, plugin: str = "") -> "Status":
        return cls(Code.ERROR, (reason,), plugin)

    def __str__(self) -> str:
        return f"{self.code.name}({self.message})" if self.reasons else self.code.name


SUCCESS = Status()
SKIP = Status(Code.SKIP)


@runtime_checkable
class FilterPlugin(Protocol):
    name: str

    def filter(self, pod: PodInfo, node: NodeInfo) -> Status: ...


@runtime_checkable
class ScorePlugin(Protocol):
    name: str

    def score(self, pod: PodInfo, node: NodeInfo) -> int: ...


def default_normalize(scores: list[int], reverse: bool = False) -> None:
    """Kubernetes' DefaultNormalizeScore: scale to 0..100 by the maximum, in place."""
    top = max(scores, default=0)
    if top == 0:
        if reverse:
            for i in range(len(scores)):
                scores[i] = MAX_NODE_SCORE
        return
    for i, s in enumerate(scores):
        s = MAX_NODE_SCORE * s // top
        scores[i] = MAX_NODE_SCORE - s if reverse else s


@dataclass
class FitError(Exception):
    """No node can take the pod; ``message`` is what users see on the pod and in Events."""

    pod_key: str
    num_all_nodes: int
    statuses: dict[str, Status] = field(default_factory=dict)
    pre_filter: Status | None = None

    @property
    def message(self) -> str:
        return fit_error_message(self.num_all_nodes, self.statuses, self.pre_filter)

    def __str__(self) -> str:
        return self.message


def fit_error_message(num_all_nodes: int, statuses: dict[str, Status] | Iterable[Status],
                      pre_filter: Status | None = None) -> str:
    """``0/N nodes are available: <count> <reason>, ....`` (see the module docstring)."""
    if num_all_nodes == 0:
        return NO_NODES_MESSAGE
    msg = f"0/{num_all_nodes} nodes are available"
    if pre_filter is not None and not pre_filter.ok:
        return f"{msg}: {pre_filter.message}."
    values = statuses.values() if isinstance(statuses, dict) else statuses
    hist: Counter = Counter()
    for st in values:
        for reason in st.reasons:
            hist[reason] += 1
    parts = sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))
    if parts:
        msg += ": " + ", ".join(f"{n} {reason}" for reason, n in parts)
    return msg + "."


@dataclass
class ScheduleResult:
    node: str
    evaluated: int
    feasible: int
    scores: dict[str, int] | None = None


class Framework:
    """Runs the configured filters and weighted scores for one pod at a time.

    Not thread-safe: one scheduling loop owns it (its state is the rotating
    start index and the memo of node-local results), and calls it with the
    cache locked so NodeInfos do not change during a decision.
    """

    def __init__(self, filters: Sequence[Any], scores: Sequence[tuple[Any, int]], *,
                 percentage_of_nodes_to_score: int = 0, rng: random.Random | None = None,
                 memoize: bool = True):
        self.filters = list(filters)
        self.scores = [(p, w) for p, w in scores if w > 0]
        self.percentage = percentage_of_nodes_to_score
        self.rng = rng or random.Random()
        self.memoize = memoize
        self._next_start = 0
        # pod class -> node name -> [generation, filter status, {score plugin index: raw score}]
        self._memo: OrderedDict[bytes, dict[str, list]] = OrderedDict()
        self.memo_hits = 0
        self._filter_steps = [(p.name, getattr(p, "pre_filter", None), p.filter) for p in self.filters]

    def num_feasible_nodes_to_find(self, num_all: int) -> int:
        """How many feasible nodes are enough (upstream's adaptive percentageOfNodesToScore)."""
        if num_all < MIN_FEASIBLE_NODES_TO_FIND:
            return num_all
        pct = self.percentage
        if pct <= 0:
            pct = max(MIN_FEASIBLE_NODES_PERCENTAGE, 50 - num_all // 125)
        if pct >= 100:
            return num_all
        n = num_all * pct // 100
        return max(n, MIN_FEASIBLE_NODES_TO_FIND)

    def _memo_for(self, pod: PodInfo) -> dict[str, list]:
        key = orjson.dumps([pod.namespace, pod.labels, pod.owner_uid, pod.spec], option=orjson.OPT_SORT_KEYS)
        table = self._memo.get(key)
        if table is None:
            table = self._memo[key] = {}
            if len(self._memo) > MEMO_CLASSES:
                self._memo.popitem(last=False)
        else:
            self._memo.move_to_end(key)
        return table

    def find_feasible(self, pod: PodInfo, nodes: Sequence[NodeInfo],
                      memo: dict[str, list] | None = None) -> tuple[list[NodeInfo], dict[str, Status]]:
        """Filter nodes from the rotating start until enough pass; raise FitError if none does.

        ``memo`` (see the module docstring) is used only if every filter that
        applies to this pod is node-local.
        """
        n = len(nodes)
        fns = []
        for plugin, (name, pre, fn) in zip(self.filters, self._filter_steps):
            if pre is not None:
                st = pre(pod)
                if st.code == Code.SKIP:
                    continue  # nothing to check for this pod: its filter is not even called
                if st.code:
                    if st.code == Code.ERROR:
                        raise PluginError(name, st.message)
                    raise FitError(pod.key, n, {}, Status(st.code, st.reasons, name))
            if not getattr(plugin, "node_local", False):
                memo = None
            fns.append((name, fn))
        want = self.num_feasible_nodes_to_find(n)
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        start = self._next_start % n if n else 0
        processed = 0
        for i in range(n):
            node = nodes[(start + i) % n]
            processed += 1
            m = memo.get(node.name) if memo is not None else None
            if m is not None and m[0] == node.generation:
                st = m[1]
                self.memo_hits += 1
            else:
                st = SUCCESS
                for name, fn in fns:
                    r = fn(pod, node)
                    if r is not SUCCESS and r.code:  # identity first: the common case costs one compare
                        if r.code == Code.ERROR:
                            raise PluginError(name, f"node {node.name}: {r.message}")
                        st = r if r.plugin else Status(r.code, r.reasons, name)
                        break
                if memo is not None:
                    memo[node.name] = [node.generation, st, None]
            if st is SUCCESS:
                feasible.append(node)
                if len(feasible) >= want:
                    break
            else:
                statuses[node.name] = st
        self._next_start = (start + processed) % n if n else 0
        if not feasible:
            raise FitError(pod.key, n, statuses)
        return feasible, statuses

    def score(self, pod: PodInfo, feasible: Sequence[NodeInfo], memo: dict[str, list] | None = None) -> list[int]:
        """Weighted totals per feasible node.

        Node-local plugins without ``normalize`` are "static": their weighted
        sum for a node depends on nothing but the pod class and the node's
        generation, so with a memo it is computed once and reused as one
        number. The others are computed (node-local ones from the memo), then
        normalized over all feasible nodes, on every cycle.
        """
        totals = [0] * len(feasible)
        static: list[tuple[int, Any, int]] = []
        for j, (plugin, weight) in enumerate(self.scores):
            pre = getattr(plugin, "pre_score", None)
            if pre is not None and pre(pod, feasible).code == Code.SKIP:
                continue
            fn = plugin.score
            norm = getattr(plugin, "normalize", None)
            node_local = getattr(plugin, "node_local", False)
            if norm is None and node_local:
                static.append((j, fn, weight))
                continue
            if memo is not None and node_local:
                raw = []
                for node in feasible:
                    m = memo.get(node.name)
                    if m is None or m[0] != node.generation:
                        raw.append(fn(pod, node))
                        continue
                    cached = m[2]
                    if cached is None:
                        cached = m[2] = {}
                    v = cached.get(j)
                    if v is None:
                        v = cached[j] = fn(pod, node)
                    raw.append(v)
            else:
                raw = [fn(pod, node) for node in feasible]
            if norm is not None:
                norm(pod, raw)
            for i, s in enumerate(raw):
                totals[i] += s * weight
        if static:
            key = tuple(j for j, _, _ in static)  # which static plugins took part (pre_score may skip)
            for i, node in enumerate(feasible):
                m = memo.get(node.name) if memo is not None else None
                if m is not None and m[0] == node.generation:
                    cached = m[2]
                    if cached is None:
                        cached = m[2] = {}
                    v = cached.get(key)
                    if v is None:
                        v = cached[key] = sum(fn(pod, node) * w for _, fn, w in static)
                else:
                    v = sum(fn(pod, node) * w for _, fn, w in static)
                totals[i] += v
        return totals

    def schedule(self, pod: PodInfo, nodes: Sequence[NodeInfo], *, keep_scores: bool = False) -> ScheduleResult:
        """The node for ``pod``; raises FitError (no node fits) or PluginError."""
        pod.state.clear()
        if not nodes:
            raise FitError(pod.key, 0)
        memo = self._memo_for(pod) if self.memoize else None
        feasible, statuses = self.find_feasible(pod, nodes, memo)
        evaluated = len(feasible) + len(statuses)
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, evaluated, 1)
        totals = self.score(pod, feasible, memo)
        best = self.select_host(feasible, totals)
        scores = {n.name: s for n, s in zip(feasible, totals)} if keep_scores else None
        return ScheduleResult(best, evaluated, len(feasible), scores)

    def select_host(self, nodes: Sequence[NodeInfo], totals: Sequence[int]) -> str:
        """Highest total; among equals a uniformly random one."""
        best = max(totals)
        ties = [i for i, t in enumerate(totals) if t == best]
        i = ties[0] if len(ties) == 1 else ties[self.rng.randrange(len(ties))]
        return nodes[i].name


class PluginError(Exception):
    """A plugin failed (not "the pod does not fit"): the pod is retried with back-off."""

    def __init__(self, plugin: str, message: str):
        super().__init__(f"{plugin}: {message}")
        self.plugin = plugin


__all__ = [
    "Code", "Status", "SUCCESS", "SKIP", "FilterPlugin", "ScorePlugin", "Framework", "FitError",
    "PluginError", "ScheduleResult", "fit_error_message", "default_normalize", "MAX_NODE_SCORE",
]
