"""The in-tree plugins and the default profile (which filters, which scores, what weights).

Filters run in upstream's order, cheapest and most decisive first, and the
first failure decides a node's reason: NodeUnschedulable, NodeName,
NodeReady, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit.

Score weights follow upstream's defaults where a counterpart exists
(TaintToleration 3, NodeAffinity 2, resource scores 1, spreading 2 like
PodTopologySpread) and are overridden with ``--weights Name=N,...``; a weight
of 0 turns a score plugin off.
"""
from __future__ import annotations

from typing import Any

from scheduler.plugins.nodeaffinity import NodeAffinity
from scheduler.plugins.nodename import NodeName
from scheduler.plugins.nodeports import NodePorts
from scheduler.plugins.noderesources import BalancedAllocation, LeastAllocated, NodeResourcesFit
from scheduler.plugins.nodeunschedulable import NodeReady, NodeUnschedulable
from scheduler.plugins.selectorspread import SelectorSpread, ServicesLister
from scheduler.plugins.tainttoleration import TaintToleration

DEFAULT_WEIGHTS: dict[str, int] = {
    "LeastAllocated": 1,
    "BalancedAllocation": 1,
    "SelectorSpread": 2,
    "NodeAffinity": 2,
    "TaintToleration": 3,
}


def parse_weights(text: str | None) -> dict[str, int]:
    """``"LeastAllocated=2,SelectorSpread=0"`` -> the full weight table (defaults for the rest)."""
    weights = dict(DEFAULT_WEIGHTS)
    if not text:
        return weights
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in weights:
            raise ValueError(f"unknown score plugin {name!r} in --weights; known: {', '.join(DEFAULT_WEIGHTS)}")
        try:
            w = int(value)
        except ValueError:
            raise ValueError(f"weight of {name} must be an integer, got {value!r}") from None
        if w < 0:
            raise ValueError(f"weight of {name} must be >= 0, got {w}")
        weights[name] = w
    return weights


def default_plugins(weights: dict[str, int] | None = None,
                    services: ServicesLister | None = None) -> tuple[list[Any], list[tuple[Any, int]]]:
    """(filters, [(score plugin, weight)]) of the default profile."""
    w = dict(DEFAULT_WEIGHTS)
    w.update(weights or {})
    affinity = NodeAffinity()
    taints = TaintToleration()
    filters = [NodeUnschedulable(), NodeName(), NodeReady(), taints, affinity, NodePorts(), NodeResourcesFit()]
    scores = [
        (LeastAllocated(), w["LeastAllocated"]),
        (BalancedAllocation(), w["BalancedAllocation"]),
        (SelectorSpread(services), w["SelectorSpread"]),
        (affinity, w["NodeAffinity"]),
        (taints, w["TaintToleration"]),
    ]
    return filters, scores


__all__ = [
    "DEFAULT_WEIGHTS", "parse_weights", "default_plugins", "NodeAffinity", "NodeName", "NodePorts",
    "NodeResourcesFit", "LeastAllocated", "BalancedAllocation", "NodeReady", "NodeUnschedulable",
    "SelectorSpread", "TaintToleration",
]
