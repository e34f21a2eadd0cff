"""What the benchmarks share: the realistic pod body, percentiles, progress output.

The pod is the ~600-byte body of the kubectl contract (docs/design.md: inputs are
realistic, not one repeated tiny request), so every benchmark loads the API
server with the same objects and their figures compare.
"""
from __future__ import annotations

import copy
import sys

_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web-0", "namespace": "default", "labels": {"app": "web", "tier": "frontend", "release": "stable"},
                 "annotations": {"team": "platform"}},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.25.3", "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                             "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m", "memory": "128Mi"}},
                             "env": [{"name": "MODE", "value": "production"}]}],
             "restartPolicy": "Always", "nodeSelector": {"kubernetes.io/os": "linux"}},
}


def pod_body(namespace: str = "default") -> dict:
    """A fresh copy of the benchmark pod, named web-0, in namespace."""
    pod = copy.deepcopy(_POD)
    pod["metadata"]["namespace"] = namespace
    return pod


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]
