"""Server-side defaulting of wire objects, as the Kubernetes API server does it.

Clients send sparse objects (``kubectl run`` sends a pod with one container
and an image); what they read back, and what every component acts on, has
the defaults filled in: the restart and DNS policies, the image pull policy
derived from the tag, probe timings, service target ports, the pod's QoS
class. Filling them in once, on the server, before validation, means no
component has to guess, and ``kubectl get -o yaml`` shows what a real
cluster shows.

The rules are Kubernetes' ``SetDefaults_*`` functions for core/v1 plus the
parts of its admission chain and registry strategies that add fields on
create (pod priority, namespace finalizers, the QoS class). Like Go's
defaulting, a field counts as unset when it is missing, null, or the zero
value of a non-pointer field ("" for strings, 0 for probe timings).

``apply_defaults`` never raises: a field of the wrong JSON type is left
alone for validation to report. It is idempotent, so the server can run it
on every create and update.
"""
from __future__ import annotations

from typing import Any

from api.quantity import parse_quantity

DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_CLIENT_IP_TIMEOUT = 10800  # 3 hours, Kubernetes' DefaultClientIPServiceAffinitySeconds
DEFAULT_FILE_MODE = 0o644  # secret, configMap, downwardAPI and projected volumes
# Priority admission resolves these two built-in classes without a PriorityClass object.
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
PROBE_DEFAULTS = {"timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
VOLUME_SOURCES_WITH_MODE = ("secret", "configMap", "downwardAPI", "projected")


def _unset(d: dict, key: str, zero: tuple = ("",)) -> bool:
    """True when Go would see d[key] as unset: missing, null, or a zero value."""
    v = d.get(key)
    return v is None or any(v == z and type(v) is type(z) for z in zero)


def _default(d: dict, key: str, value: Any, zero: tuple = ("",)) -> None:
    if _unset(d, key, zero):
        d[key] = value


def _ensure_dict(d: dict, key: str) -> dict | None:
    """d[key] as a dict, created when unset; None when it holds some other type."""
    if d.get(key) is None:
        d[key] = {}
    v = d[key]
    return v if isinstance(v, dict) else None


def _dicts(d: dict, key: str) -> list[dict]:
    """The object elements of d[key] when it is a list (others are validation's business)."""
    v = d.get(key)
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _sub(d: dict, key: str) -> dict | None:
    v = d.get(key)
    return v if isinstance(v, dict) else None


# ------------------------------------------------------------------ pods
def image_pull_policy(image: str) -> str:
    """Always for ":latest" or an untagged image without a digest, else IfNotPresent."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]  # a registry's ":5000" is not a tag
    tag = last.rsplit(":", 1)[1] if ":" in last else ("" if digest else "latest")
    return "Always" if tag == "latest" else "IfNotPresent"


def _http_get(action: dict | None) -> None:
    if action is not None:
        _default(action, "path", "/")
        _default(action, "scheme", "HTTP")


def _probe(probe: dict | None) -> None:
    if probe is None:
        return
    for key, value in PROBE_DEFAULTS.items():
        _default(probe, key, value, zero=(0,))
    _http_get(_sub(probe, "httpGet"))


def _container(ctr: dict, host_network: bool) -> None:
    _default(ctr, "terminationMessagePath", "/dev/termination-log")
    _default(ctr, "terminationMessagePolicy", "File")
    if _unset(ctr, "imagePullPolicy") and isinstance(ctr.get("image"), str):
        ctr["imagePullPolicy"] = image_pull_policy(ctr["image"])
    for port in _dicts(ctr, "ports"):
        _default(port, "protocol", "TCP")
        container_port = port.get("containerPort")
        if host_network and isinstance(container_port, int) and not isinstance(container_port, bool):
            _default(port, "hostPort", container_port, zero=(0,))
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(_sub(ctr, key))
    lifecycle = _sub(ctr, "lifecycle")
    for hook in ("postStart", "preStop"):
        handler = _sub(lifecycle, hook) if lifecycle else None
        _http_get(_sub(handler, "httpGet") if handler else None)
    for var in _dicts(ctr, "env"):
        source = _sub(var, "valueFrom")
        field_ref = _sub(source, "fieldRef") if source else None
        if field_ref is not None:
            _default(field_ref, "apiVersion", "v1")
    resources = _ensure_dict(ctr, "resources")
    limits = _sub(resources, "limits") if resources is not None else None
    if limits:
        # A limit without a request means "request exactly the limit".
        requests = _ensure_dict(resources, "requests")
        if requests is not None:
            for name, value in limits.items():
                requests.setdefault(name, value)


def _volume(vol: dict) -> None:
    if not any(v is not None for k, v in vol.items() if k != "name"):
        vol["emptyDir"] = {}
    for kind in VOLUME_SOURCES_WITH_MODE:
        src = _sub(vol, kind)
        if src is not None:
            _default(src, "defaultMode", DEFAULT_FILE_MODE)
    host_path = _sub(vol, "hostPath")
    if host_path is not None and host_path.get("type") is None:
        host_path["type"] = ""


def _positive_quantity(value: Any) -> Any:
    try:
        q = parse_quantity(value)
    except ValueError:
        return None
    return q if q > 0 else None


def qos_class(pod: dict) -> str:
    """Guaranteed, Burstable or BestEffort, by Kubernetes' rules (ComputePodQOS).

    Guaranteed: every container has CPU and memory limits, and requests equal
    limits. BestEffort: no container requests or limits CPU or memory.
    Anything else is Burstable. Expects requests already defaulted from limits.
    """
    spec = _sub(pod, "spec") or {}
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    for ctr in _dicts(spec, "containers") + _dicts(spec, "initContainers"):
        resources = _sub(ctr, "resources") or {}
        for part, totals in (("requests", requests), ("limits", limits)):
            found = set()
            for name, value in (_sub(resources, part) or {}).items():
                q = _positive_quantity(value) if name in ("cpu", "memory") else None
                if q is not None:
                    totals[name] = totals.get(name, 0) + q
                    found.add(name)
            if part == "limits" and found != {"cpu", "memory"}:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests.keys() == limits.keys() and all(requests[k] == limits[k] for k in requests):
        return "Guaranteed"
    return "Burstable"


def _pod(pod: dict) -> None:
    spec = _ensure_dict(pod, "spec")
    if spec is not None:
        _default(spec, "restartPolicy", "Always")
        _default(spec, "terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD)
        _default(spec, "dnsPolicy", "ClusterFirst")
        _default(spec, "schedulerName", "default-scheduler")
        _default(spec, "securityContext", {})
        _default(spec, "enableServiceLinks", True)
        _default(spec, "serviceAccountName", "default")
        if _unset(spec, "priority"):
            class_name = spec.get("priorityClassName")
            spec["priority"] = SYSTEM_PRIORITIES.get(class_name, 0) if isinstance(class_name, str) else 0
        _default(spec, "preemptionPolicy", "PreemptLowerPriority")
        host_network = spec.get("hostNetwork") is True
        for ctr in _dicts(spec, "initContainers") + _dicts(spec, "containers"):
            _container(ctr, host_network)
        for vol in _dicts(spec, "volumes"):
            _volume(vol)
    status = _ensure_dict(pod, "status")
    if status is not None:
        _default(status, "phase", "Pending")
        if _unset(status, "qosClass"):
            status["qosClass"] = qos_class(pod)


# ------------------------------------------------------------------ services & endpoints
def _service(svc: dict) -> None:
    spec = _ensure_dict(svc, "spec")
    if spec is None:
        return
    _default(spec, "type", "ClusterIP")
    svc_type = spec["type"]
    _default(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "ClientIP":
        config = _ensure_dict(spec, "sessionAffinityConfig")
        client = _ensure_dict(config, "clientIP") if config is not None else None
        if client is not None:
            _default(client, "timeoutSeconds", DEFAULT_CLIENT_IP_TIMEOUT)
    for port in _dicts(spec, "ports"):
        _default(port, "protocol", "TCP")
        number = port.get("port")
        if _unset(port, "targetPort", zero=("", 0)) and isinstance(number, int) and not isinstance(number, bool):
            port["targetPort"] = number
    externally_accessible = svc_type in ("NodePort", "LoadBalancer") or (
        svc_type == "ClusterIP" and bool(spec.get("externalIPs")))
    if externally_accessible:
        _default(spec, "externalTrafficPolicy", "Cluster")
    if svc_type == "LoadBalancer":
        _default(spec, "allocateLoadBalancerNodePorts", True)
    if svc_type != "ExternalName":
        # clusterIPs alone names the wanted address; clusterIP is what the allocator reads.
        ips = spec.get("clusterIPs")
        if _unset(spec, "clusterIP") and isinstance(ips, list) and ips and isinstance(ips[0], str):
            spec["clusterIP"] = ips[0]
        _default(spec, "internalTrafficPolicy", "Cluster")
        # The cluster is single-stack IPv4.
        _default(spec, "ipFamilies", ["IPv4"], zero=([],))
        _default(spec, "ipFamilyPolicy", "SingleStack")


def _endpoints(ep: dict) -> None:
    for subset in _dicts(ep, "subsets"):
        for port in _dicts(subset, "ports"):
            _default(port, "protocol", "TCP")


# ------------------------------------------------------------------ the rest
def _namespace(ns: dict) -> None:
    spec = _ensure_dict(ns, "spec")
    if spec is not None and spec.get("finalizers") is None:
        spec["finalizers"] = ["kubernetes"]
    status = _ensure_dict(ns, "status")
    if status is not None:
        _default(status, "phase", "Active")


def _node(node: dict) -> None:
    _ensure_dict(node, "spec")
    _ensure_dict(node, "status")


def _event(ev: dict) -> None:
    _default(ev, "count", 1, zero=(0,))
    _default(ev, "type", "Normal")


_DEFAULTERS = {
    "Pod": _pod,
    "Service": _service,
    "Endpoints": _endpoints,
    "Namespace": _namespace,
    "Node": _node,
    "Event": _event,
    # Ingress (pathType stays as given), Lease: nothing to fill in.
}


def apply_defaults(kind: str, obj: dict) -> dict:
    """Fill in the defaults for ``kind`` in place and return ``obj``."""
    if isinstance(obj, dict) and kind in _DEFAULTERS:
        _DEFAULTERS[kind](obj)
    return obj


__all__ = ["apply_defaults", "image_pull_policy", "qos_class"]
