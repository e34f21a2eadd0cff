"""``pkctl describe``: kubectl-like sections for pods, services, nodes, namespaces, configmaps and secrets
(sizes only, never values), generic for the rest.

A describer reads the object (and what explains it: a service's
endpoints, a node's pods and lease) and writes ``Label:\\tvalue`` lines at
indentation levels; the whole text then goes through Go's tabwriter with
describe's settings, which is what aligns the labels of each block exactly
as kubectl does. Every describer ends with the object's Events, listed with
the ``involvedObject`` field selector (name, namespace and uid, so events of
an earlier object with the same name are not shown).

Names may be prefixes, as in kubectl: ``describe pods web`` describes
``web`` if it exists, else every pod whose name starts with ``web``.
"""
from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone

from api.meta import parse_time as _parse_time
from api.quantity import DECIMAL_SI, format_quantity, int_value, milli_value, parse_quantity, quantity_format
from api.tables import human_duration
from client.errors import ApiError, NotFound

from .errors import CLIError, format_api_error
from .resources import resolve_targets
from .tabwriter import describe_format

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
INDENT = "  "


class Writer:
    def __init__(self):
        self.parts: list[str] = []

    def write(self, level: int, text: str) -> None:
        self.parts.append(INDENT * level + text)

    def text(self) -> str:
        return describe_format("".join(self.parts))


# ------------------------------------------------------------------ formatting helpers
def rfc1123z(ts) -> str:
    t = _parse_time(ts)
    return t.strftime("%a, %d %b %Y %H:%M:%S %z") if t else "<unset>"


def since(ts) -> str:
    t = _parse_time(ts)
    if t is None:
        return "<unknown>"
    return human_duration((datetime.now(timezone.utc) - t).total_seconds())


def _multiline(w: Writer, level: int, title: str, mapping: dict | None, skip: tuple = ()) -> None:
    items = sorted((k, v) for k, v in (mapping or {}).items() if k not in skip)
    if not items:
        w.write(level, f"{title}:\t<none>\n")
        return
    for i, (k, v) in enumerate(items):
        prefix = f"{title}:\t" if i == 0 else "\t"
        value = str(v)
        if "\n" in value or len(value) > 140:
            value = value.replace("\n", " ")
            if len(value) > 140:
                value = value[:137] + "..."
        w.write(level, f"{prefix}{k}={value}\n")


def _events(ctx, obj: dict, rt) -> list[dict]:
    """The object's events via the involvedObject field selector; [] if the server has none."""
    events_rt = ctx.discovery.try_resolve("events")
    if events_rt is None or events_rt.group not in ("",):
        return []
    md = obj.get("metadata") or {}
    terms = [f"involvedObject.name={md.get('name', '')}"]
    ns = md.get("namespace")
    if rt.namespaced and ns:
        terms.append(f"involvedObject.namespace={ns}")
        if md.get("uid"):
            terms.append(f"involvedObject.uid={md['uid']}")
    else:
        # Events of cluster-scoped objects can live in any namespace and their
        # reporters disagree about the uid (kubelets use the node name), so
        # match on kind and name.
        terms.append(f"involvedObject.kind={rt.kind}")
    try:
        items, _ = ctx.client.list_all(events_rt, ns if rt.namespaced else None, field_selector=",".join(terms))
    except ApiError:
        return []

    def last(e: dict):
        return _parse_time(e.get("lastTimestamp")) or _parse_time(e.get("eventTime")) \
            or _parse_time(e.get("firstTimestamp")) or datetime.min.replace(tzinfo=timezone.utc)

    return sorted(items, key=last)


def _write_events(w: Writer, events: list[dict]) -> None:
    if not events:
        w.write(0, "Events:\t<none>\n")
        return
    w.write(0, "Events:\n")
    w.write(1, "Type\tReason\tAge\tFrom\tMessage\n")
    w.write(1, "----\t------\t----\t----\t-------\n")
    for e in events:
        count = int(e.get("count") or 0)
        first = e.get("firstTimestamp") or e.get("eventTime")
        if count > 1:
            age = f"{since(e.get('lastTimestamp') or first)} (x{count} over {since(first)})"
        else:
            age = since(first)
        source = (e.get("source") or {}).get("component") or e.get("reportingController") \
            or e.get("reportingComponent") or ""
        message = (e.get("message") or "").strip().replace("\n", " ")
        w.write(1, f"{e.get('type', '')}\t{e.get('reason', '')}\t{age}\t{source}\t{message}\n")


def _header(w: Writer, obj: dict, namespaced: bool) -> None:
    md = obj.get("metadata") or {}
    w.write(0, f"Name:\t{md.get('name', '')}\n")
    if namespaced:
        w.write(0, f"Namespace:\t{md.get('namespace', '')}\n")


# ------------------------------------------------------------------ pods
def _container_state(w: Writer, level: int, title: str, state: dict | None) -> None:
    state = state or {}
    if "running" in state:
        w.write(level, f"{title}:\tRunning\n")
        w.write(level + 1, f"Started:\t{rfc1123z(state['running'].get('startedAt'))}\n")
    elif "waiting" in state:
        w.write(level, f"{title}:\tWaiting\n")
        if state["waiting"].get("reason"):
            w.write(level + 1, f"Reason:\t{state['waiting']['reason']}\n")
    elif "terminated" in state:
        t = state["terminated"]
        w.write(level, f"{title}:\tTerminated\n")
        if t.get("reason"):
            w.write(level + 1, f"Reason:\t{t['reason']}\n")
        if t.get("message"):
            w.write(level + 1, f"Message:\t{t['message']}\n")
        w.write(level + 1, f"Exit Code:\t{t.get('exitCode', 0)}\n")
        if t.get("signal"):
            w.write(level + 1, f"Signal:\t{t['signal']}\n")
        w.write(level + 1, f"Started:\t{rfc1123z(t.get('startedAt'))}\n")
        w.write(level + 1, f"Finished:\t{rfc1123z(t.get('finishedAt'))}\n")
    else:
        w.write(level, f"{title}:\tWaiting\n")


def _ports(ports: list | None, key: str) -> str:
    vals = [f"{p.get(key, 0)}/{p.get('protocol', 'TCP')}" for p in ports or []]
    return ", ".join(vals)


def _containers(w: Writer, title: str, containers: list, statuses: list) -> None:
    if not containers:
        return
    by_name = {s.get("name"): s for s in statuses or []}
    w.write(0, f"{title}:\n")
    for c in containers:
        has_status = c.get("name") in by_name  # kubectl shows state lines only once there is a status
        st = by_name.get(c.get("name"), {})
        w.write(1, f"{c.get('name', '')}:\n")
        if has_status:
            w.write(2, f"Container ID:\t{st.get('containerID', '')}\n")
        w.write(2, f"Image:\t{c.get('image', '')}\n")
        if has_status:
            w.write(2, f"Image ID:\t{st.get('imageID', '')}\n")
        ports = c.get("ports") or []
        if not ports:
            w.write(2, "Port:\t<none>\n")
            w.write(2, "Host Port:\t<none>\n")
        elif len(ports) == 1:
            w.write(2, f"Port:\t{_ports(ports, 'containerPort')}\n")
            w.write(2, f"Host Port:\t{_ports(ports, 'hostPort')}\n")
        else:
            w.write(2, f"Ports:\t{_ports(ports, 'containerPort')}\n")
            w.write(2, f"Host Ports:\t{_ports(ports, 'hostPort')}\n")
        for key, label in (("command", "Command"), ("args", "Args")):
            if c.get(key):
                w.write(2, f"{label}:\n")
                for word in c[key]:
                    for line in str(word).split("\n"):
                        w.write(3, f"{line}\n")
        if has_status:
            _container_state(w, 2, "State", st.get("state"))
            if st.get("lastState"):
                _container_state(w, 2, "Last State", st.get("lastState"))
            w.write(2, f"Ready:\t{'True' if st.get('ready') else 'False'}\n")
            w.write(2, f"Restart Count:\t{st.get('restartCount', 0)}\n")
        res = c.get("resources") or {}
        for key, label in (("limits", "Limits"), ("requests", "Requests")):
            if res.get(key):
                w.write(2, f"{label}:\n")
                for k in sorted(res[key]):
                    w.write(3, f"{k}:\t{res[key][k]}\n")
        for probe, label in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness"),
                             ("startupProbe", "Startup")):
            if c.get(probe):
                w.write(2, f"{label}:\t{_probe(c[probe])}\n")
        env = c.get("env") or []
        if not env:
            w.write(2, "Environment:\t<none>\n")
        else:
            w.write(2, "Environment:\n")
            for e in env:
                if "value" in e or "valueFrom" not in e:
                    w.write(3, f"{e.get('name', '')}:\t{e.get('value', '')}\n")
                else:
                    w.write(3, f"{e.get('name', '')}:\t<set from {', '.join(sorted(e['valueFrom']))}>\n")
        mounts = c.get("volumeMounts") or []
        if not mounts:
            w.write(2, "Mounts:\t<none>\n")
        else:
            w.write(2, "Mounts:\n")
            for m in sorted(mounts, key=lambda m: m.get("mountPath", "")):
                flags = "ro" if m.get("readOnly") else "rw"
                w.write(3, f"{m.get('mountPath', '')} from {m.get('name', '')} ({flags})\n")


def _probe(p: dict) -> str:
    if "httpGet" in p:
        h = p["httpGet"]
        what = f"http-get {h.get('scheme', 'HTTP').lower()}://{h.get('host', '')}:{h.get('port', '')}{h.get('path', '')}"
    elif "tcpSocket" in p:
        what = f"tcp-socket {p['tcpSocket'].get('host', '')}:{p['tcpSocket'].get('port', '')}"
    elif "exec" in p:
        what = "exec [" + " ".join(p["exec"].get("command") or []) + "]"
    elif "grpc" in p:
        what = f"grpc <pod>:{p['grpc'].get('port', '')}"
    else:
        what = "unknown"
    return (f"{what} delay={p.get('initialDelaySeconds', 0)}s timeout={p.get('timeoutSeconds', 1)}s "
            f"period={p.get('periodSeconds', 10)}s #success={p.get('successThreshold', 1)} "
            f"#failure={p.get('failureThreshold', 3)}")


def _qos(pod: dict) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    requests = [((c.get("resources") or {}).get("requests") or {}) for c in containers]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        l.get("cpu") and l.get("memory") and r.get("cpu", l["cpu"]) == l["cpu"]
        and r.get("memory", l["memory"]) == l["memory"]
        for r, l in zip(requests, limits))
    return "Guaranteed" if guaranteed else "Burstable"


def describe_pod(ctx, pod: dict, rt) -> str:
    w = Writer()
    md = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    _header(w, pod, True)
    w.write(0, f"Priority:\t{spec.get('priority', 0)}\n")
    if spec.get("priorityClassName"):
        w.write(0, f"Priority Class Name:\t{spec['priorityClassName']}\n")
    if spec.get("serviceAccountName"):
        w.write(0, f"Service Account:\t{spec['serviceAccountName']}\n")
    node = spec.get("nodeName")
    w.write(0, f"Node:\t{node + '/' + status.get('hostIP', '') if node else '<none>'}\n")
    if status.get("startTime"):
        w.write(0, f"Start Time:\t{rfc1123z(status['startTime'])}\n")
    _multiline(w, 0, "Labels", md.get("labels"))
    _multiline(w, 0, "Annotations", md.get("annotations"), skip=(LAST_APPLIED,))
    if md.get("deletionTimestamp"):
        left = _parse_time(md["deletionTimestamp"])
        lasts = human_duration(max(0.0, (left - datetime.now(timezone.utc)).total_seconds())) if left else "?"
        w.write(0, f"Status:\tTerminating (lasts {lasts})\n")
        w.write(0, f"Termination Grace Period:\t{md.get('deletionGracePeriodSeconds', 0)}s\n")
    else:
        w.write(0, f"Status:\t{status.get('phase', '')}\n")
    if status.get("reason"):
        w.write(0, f"Reason:\t{status['reason']}\n")
    if status.get("message"):
        w.write(0, f"Message:\t{status['message']}\n")
    w.write(0, f"IP:\t{status.get('podIP', '')}\n")
    ips = status.get("podIPs") or []
    if ips:
        w.write(0, "IPs:\n")
        for ip in ips:
            w.write(1, f"IP:\t{ip.get('ip', '')}\n")
    else:
        w.write(0, "IPs:\t<none>\n")
    if md.get("ownerReferences"):
        ref = next((r for r in md["ownerReferences"] if r.get("controller")), md["ownerReferences"][0])
        w.write(0, f"Controlled By:\t{ref.get('kind', '')}/{ref.get('name', '')}\n")
    _containers(w, "Init Containers", spec.get("initContainers") or [], status.get("initContainerStatuses"))
    _containers(w, "Containers", spec.get("containers") or [], status.get("containerStatuses"))
    conds = status.get("conditions") or []
    if conds:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\n")
        for c in conds:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \n")
    vols = spec.get("volumes") or []
    if not vols:
        w.write(0, "Volumes:\t<none>\n")
    else:
        w.write(0, "Volumes:\n")
        for v in vols:
            w.write(1, f"{v.get('name', '')}:\n")
            kinds = [k for k in v if k != "name"]
            if kinds:
                w.write(2, f"Type:\t{kinds[0]}\n")
                detail = v[kinds[0]] or {}
                for k in sorted(detail) if isinstance(detail, dict) else []:
                    w.write(2, f"{_smart_label(k)}:\t{detail[k]}\n")
    w.write(0, f"QoS Class:\t{status.get('qosClass') or _qos(pod)}\n")
    _multiline(w, 0, "Node-Selectors", spec.get("nodeSelector"))
    tols = spec.get("tolerations") or []
    if not tols:
        w.write(0, "Tolerations:\t<none>\n")
    for i, t in enumerate(tols):
        text = t.get("key", "")
        if t.get("value"):
            text += f"={t['value']}"
        if t.get("effect"):
            text += f":{t['effect']}"
        if t.get("operator") == "Exists" and not t.get("value"):
            text += " op=Exists"
        if t.get("tolerationSeconds") is not None:
            text += f" for {t['tolerationSeconds']}s"
        w.write(0, f"{'Tolerations:' if i == 0 else ''}\t{text or 'op=Exists'}\n")
    if ctx.show_events:
        _write_events(w, _events(ctx, pod, rt))
    return w.text()


# ------------------------------------------------------------------ services
def _endpoint_addresses(ep: dict | None, port_name: str) -> str:
    if not ep:
        return "<none>"
    out = []
    for subset in ep.get("subsets") or []:
        ports = [p for p in subset.get("ports") or [] if (p.get("name") or "") == (port_name or "")]
        if not ports and len(subset.get("ports") or []) == 1 and not port_name:
            ports = subset["ports"]
        for a in subset.get("addresses") or []:
            for p in ports:
                out.append(f"{a.get('ip', '')}:{p.get('port', '')}")
    if not out:
        return "<none>"
    if len(out) > 3:
        return ",".join(out[:3]) + f" + {len(out) - 3} more..."
    return ",".join(out)


def describe_service(ctx, svc: dict, rt) -> str:
    w = Writer()
    md = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    _header(w, svc, True)
    _multiline(w, 0, "Labels", md.get("labels"))
    _multiline(w, 0, "Annotations", md.get("annotations"), skip=(LAST_APPLIED,))
    sel = spec.get("selector") or {}
    w.write(0, f"Selector:\t{','.join(f'{k}={sel[k]}' for k in sorted(sel)) or '<none>'}\n")
    stype = spec.get("type") or "ClusterIP"
    w.write(0, f"Type:\t{stype}\n")
    if spec.get("ipFamilyPolicy"):
        w.write(0, f"IP Family Policy:\t{spec['ipFamilyPolicy']}\n")
    if spec.get("ipFamilies"):
        w.write(0, f"IP Families:\t{','.join(spec['ipFamilies'])}\n")
    if stype == "ExternalName":
        w.write(0, f"External Name:\t{spec.get('externalName', '')}\n")
    else:
        w.write(0, f"IP:\t{spec.get('clusterIP', '')}\n")
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        w.write(0, f"IPs:\t{','.join(ips) or '<none>'}\n")
    if spec.get("externalIPs"):
        w.write(0, f"External IPs:\t{','.join(spec['externalIPs'])}\n")
    ep = None
    if ctx.discovery.try_resolve("endpoints") is not None:
        try:
            ep = ctx.client.get(ctx.discovery.resolve("endpoints"), md.get("name", ""), md.get("namespace"))
        except ApiError:
            ep = None
    for p in spec.get("ports") or []:
        name = p.get("name") or "<unset>"
        w.write(0, f"Port:\t{name}  {p.get('port', '')}/{p.get('protocol', 'TCP')}\n")
        tp = p.get("targetPort", p.get("port"))
        tp_text = f"{tp}/{p.get('protocol', 'TCP')}"
        w.write(0, f"TargetPort:\t{tp_text}\n")
        if p.get("nodePort"):
            w.write(0, f"NodePort:\t{name}  {p['nodePort']}/{p.get('protocol', 'TCP')}\n")
        w.write(0, f"Endpoints:\t{_endpoint_addresses(ep, p.get('name') or '')}\n")
    w.write(0, f"Session Affinity:\t{spec.get('sessionAffinity', 'None')}\n")
    if spec.get("internalTrafficPolicy"):
        w.write(0, f"Internal Traffic Policy:\t{spec['internalTrafficPolicy']}\n")
    if spec.get("externalTrafficPolicy"):
        w.write(0, f"External Traffic Policy:\t{spec['externalTrafficPolicy']}\n")
    if ctx.show_events:
        _write_events(w, _events(ctx, svc, rt))
    return w.text()


# ------------------------------------------------------------------ nodes
def describe_node(ctx, node: dict, rt) -> str:
    w = Writer()
    md = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    labels = md.get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    _header(w, node, False)
    w.write(0, f"Roles:\t{','.join(r for r in roles if r) or '<none>'}\n")
    _multiline(w, 0, "Labels", labels)
    _multiline(w, 0, "Annotations", md.get("annotations"), skip=(LAST_APPLIED,))
    w.write(0, f"CreationTimestamp:\t{rfc1123z(md.get('creationTimestamp'))}\n")
    taints = spec.get("taints") or []
    if not taints:
        w.write(0, "Taints:\t<none>\n")
    for i, t in enumerate(taints):
        text = t.get("key", "") + (f"={t['value']}" if t.get("value") else "") + f":{t.get('effect', '')}"
        w.write(0, f"{'Taints:' if i == 0 else ''}\t{text}\n")
    w.write(0, f"Unschedulable:\t{'true' if spec.get('unschedulable') else 'false'}\n")
    lease_rt = ctx.discovery.try_resolve("leases.coordination.k8s.io")
    if lease_rt is not None:
        try:
            lease = ctx.client.get(lease_rt, md.get("name", ""), "kube-node-lease")
            ls = lease.get("spec") or {}
            w.write(0, "Lease:\n")
            w.write(1, f"HolderIdentity:\t{ls.get('holderIdentity') or '<unset>'}\n")
            w.write(1, f"AcquireTime:\t{rfc1123z(ls.get('acquireTime'))}\n")
            w.write(1, f"RenewTime:\t{rfc1123z(ls.get('renewTime'))}\n")
        except ApiError:
            w.write(0, "Lease:\tFailed to get lease: not found\n")
    conds = status.get("conditions") or []
    if conds:
        w.write(0, "Conditions:\n")
        w.write(1, "Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage\n")
        w.write(1, "----\t------\t-----------------\t------------------\t------\t-------\n")
        for c in conds:
            w.write(1, f"{c.get('type', '')} \t{c.get('status', '')} \t{rfc1123z(c.get('lastHeartbeatTime'))} \t"
                       f"{rfc1123z(c.get('lastTransitionTime'))} \t{c.get('reason', '')} \t{c.get('message', '')}\n")
    addrs = status.get("addresses") or []
    if addrs:
        w.write(0, "Addresses:\n")
        for a in addrs:
            w.write(1, f"{a.get('type', '')}:\t{a.get('address', '')}\n")
    for key, title in (("capacity", "Capacity"), ("allocatable", "Allocatable")):
        if status.get(key):
            w.write(0, f"{title}:\n")
            for k in sorted(status[key]):
                w.write(1, f"{k}:\t{status[key][k]}\n")
    info = status.get("nodeInfo") or {}
    if info:
        w.write(0, "System Info:\n")
        for k, label in (("machineID", "Machine ID"), ("systemUUID", "System UUID"), ("bootID", "Boot ID"),
                         ("kernelVersion", "Kernel Version"), ("osImage", "OS Image"),
                         ("operatingSystem", "Operating System"), ("architecture", "Architecture"),
                         ("containerRuntimeVersion", "Container Runtime Version"),
                         ("kubeletVersion", "Kubelet Version"), ("kubeProxyVersion", "Kube-Proxy Version")):
            w.write(1, f"{label}:\t{info.get(k, '')}\n")
    if spec.get("podCIDR"):
        w.write(0, f"PodCIDR:\t{spec['podCIDR']}\n")
        w.write(0, f"PodCIDRs:\t{','.join(spec.get('podCIDRs') or [spec['podCIDR']])}\n")
    pods_rt = ctx.discovery.try_resolve("pods")
    if pods_rt is not None:
        try:
            pods, _ = ctx.client.list_all(pods_rt, None, field_selector=f"spec.nodeName={md.get('name', '')}")
        except ApiError:
            pods = []
        pods = [p for p in pods if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        _node_resources(w, node, pods)
    if ctx.show_events:
        _write_events(w, _events(ctx, node, rt))
    return w.text()


class _Sum:
    """A quantity total that prints like Kubernetes' (the first non-zero term's suffix family)."""

    def __init__(self):
        self.value = parse_quantity("0")
        self.fmt = DECIMAL_SI

    def add(self, q) -> None:
        if q is None:
            return
        v = parse_quantity(q)
        if self.value == 0 and v != 0:
            self.fmt = quantity_format(q)
        self.value += v

    def max(self, other: "_Sum") -> None:
        if other.value > self.value:
            self.value, self.fmt = other.value, other.fmt

    def __str__(self) -> str:
        return format_quantity(self.value, self.fmt)


def _pod_totals(pod: dict) -> dict[str, dict[str, _Sum]]:
    """resourcehelper.PodRequestsAndLimits: containers summed, at least the largest init container."""
    spec = pod.get("spec") or {}
    out = {"requests": {}, "limits": {}}
    for kind in ("requests", "limits"):
        for c in spec.get("containers") or []:
            for name, q in ((c.get("resources") or {}).get(kind) or {}).items():
                out[kind].setdefault(name, _Sum()).add(q)
        for c in spec.get("initContainers") or []:
            for name, q in ((c.get("resources") or {}).get(kind) or {}).items():
                one = _Sum()
                one.add(q)
                out[kind].setdefault(name, _Sum()).max(one)
        for name, q in (spec.get("overhead") or {}).items():
            out[kind].setdefault(name, _Sum()).add(q)
    return out


def _percent(total: _Sum, allocatable, milli: bool) -> int:
    try:
        alloc = milli_value(allocatable) if milli else int_value(allocatable)
    except (ValueError, TypeError):
        return 0
    if not alloc:
        return 0
    mine = milli_value(total.value) if milli else int_value(total.value)
    return int(mine / alloc * 100)


def _node_resources(w: Writer, node: dict, pods: list[dict]) -> None:
    """kubectl's Non-terminated Pods table and Allocated resources summary."""
    status = node.get("status") or {}
    allocatable = status.get("allocatable") or status.get("capacity") or {}
    w.write(0, f"Non-terminated Pods:\t({len(pods)} in total)\n")
    w.write(1, "Namespace\tName\t\tCPU Requests\tCPU Limits\tMemory Requests\tMemory Limits\tAge\n")
    w.write(1, "---------\t----\t\t------------\t----------\t---------------\t-------------\t---\n")
    totals = {"requests": {}, "limits": {}}
    for p in pods:
        t = _pod_totals(p)
        for kind in ("requests", "limits"):
            for name, q in t[kind].items():
                totals[kind].setdefault(name, _Sum()).add(str(q))
        cpu_r, cpu_l = t["requests"].get("cpu", _Sum()), t["limits"].get("cpu", _Sum())
        mem_r, mem_l = t["requests"].get("memory", _Sum()), t["limits"].get("memory", _Sum())
        pm = p.get("metadata") or {}
        w.write(1, f"{pm.get('namespace', '')}\t{pm.get('name', '')}\t\t"
                   f"{cpu_r} ({_percent(cpu_r, allocatable.get('cpu'), True)}%)\t"
                   f"{cpu_l} ({_percent(cpu_l, allocatable.get('cpu'), True)}%)\t"
                   f"{mem_r} ({_percent(mem_r, allocatable.get('memory'), False)}%)\t"
                   f"{mem_l} ({_percent(mem_l, allocatable.get('memory'), False)}%)\t"
                   f"{since(pm.get('creationTimestamp'))}\n")
    w.write(0, "Allocated resources:\n  (Total limits may be over 100 percent, i.e., overcommitted.)\n")
    w.write(1, "Resource\tRequests\tLimits\n")
    w.write(1, "--------\t--------\t------\n")
    for name, milli in (("cpu", True), ("memory", False), ("ephemeral-storage", False)):
        r, l = totals["requests"].get(name, _Sum()), totals["limits"].get(name, _Sum())
        w.write(1, f"{name}\t{r} ({_percent(r, allocatable.get(name), milli)}%)\t"
                   f"{l} ({_percent(l, allocatable.get(name), milli)}%)\n")


# ------------------------------------------------------------------ namespaces
def describe_namespace(ctx, ns: dict, rt) -> str:
    w = Writer()
    md = ns.get("metadata") or {}
    _header(w, ns, False)
    _multiline(w, 0, "Labels", md.get("labels"))
    _multiline(w, 0, "Annotations", md.get("annotations"), skip=(LAST_APPLIED,))
    w.write(0, f"Status:\t{(ns.get('status') or {}).get('phase', '')}\n")
    if md.get("deletionTimestamp"):
        w.write(0, f"Deletion Started:\t{rfc1123z(md['deletionTimestamp'])}\n")
    return w.text()


# ------------------------------------------------------------------ configmaps and secrets
def _decoded_len(value) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


def describe_configmap(ctx, cm: dict, rt) -> str:
    w = Writer()
    md = cm.get("metadata") or {}
    _header(w, cm, True)
    _multiline(w, 0, "Labels", md.get("labels"))
    _multiline(w, 0, "Annotations", md.get("annotations"), skip=(LAST_APPLIED,))
    w.write(0, "\nData\n====\n")
    for k, v in sorted((cm.get("data") or {}).items()):
        w.write(0, f"{k}:\n----\n{v}\n\n")
    w.write(0, "\nBinaryData\n====\n")
    for k, v in sorted((cm.get("binaryData") or {}).items()):
        w.write(0, f"{k}: {_decoded_len(v)} bytes\n")
    w.write(0, "\n")
    if ctx.show_events:
        _write_events(w, _events(ctx, cm, rt))
    return w.text()


def describe_secret(ctx, secret: dict, rt) -> str:
    """Sizes only, never values (kubectl shows a service-account token itself, which is meant to be read)."""
    w = Writer()
    md = secret.get("metadata") or {}
    _header(w, secret, True)
    _multiline(w, 0, "Labels", md.get("labels"))
    _multiline(w, 0, "Annotations", md.get("annotations"), skip=(LAST_APPLIED,))
    type_ = secret.get("type") or ""
    w.write(0, f"\nType:\t{type_}\n")
    w.write(0, "\nData\n====\n")
    for k, v in sorted((secret.get("data") or {}).items()):
        if k == "token" and type_ == "kubernetes.io/service-account-token":
            w.write(0, f"{k}:\t{base64.b64decode(str(v)).decode('utf-8', 'replace')}\n")
        else:
            w.write(0, f"{k}:\t{_decoded_len(v)} bytes\n")
    return w.text()


# ------------------------------------------------------------------ anything else
_INITIALISMS = {"api": "API", "uid": "UID", "ip": "IP", "ips": "IPs", "url": "URL", "id": "ID", "cidr": "CIDR",
                "cidrs": "CIDRs", "dns": "DNS", "tls": "TLS", "http": "HTTP", "https": "HTTPS", "tcp": "TCP",
                "udp": "UDP", "os": "OS", "cpu": "CPU"}


def _smart_label(key: str) -> str:
    """``creationTimestamp`` -> ``Creation Timestamp``; ``apiVersion`` -> ``API Version``."""
    words = re.findall(r"[A-Z]{2,}s(?=[A-Z]|$)|[A-Z]+(?=[A-Z][a-z]|\d|$)|[A-Z]?[a-z]+|[A-Z]+|\d+", key) or [key]
    out = []
    for word in words:
        low = word.lower()
        out.append(_INITIALISMS.get(low, word[:1].upper() + word[1:]))
    return " ".join(out)


def _generic_fields(w: Writer, level: int, value: dict, skip: set[str], path: str = "") -> None:
    for key in sorted(value):
        full = f"{path}.{key}" if path else key
        if full in skip:
            continue
        v = value[key]
        label = _smart_label(key)
        if isinstance(v, dict):
            w.write(level, f"{label}:\n")
            _generic_fields(w, level + 1, v, skip, full)
        elif isinstance(v, list):
            w.write(level, f"{label}:\n")
            for item in v:
                if isinstance(item, dict):
                    _generic_fields(w, level + 1, item, skip, full)
                else:
                    w.write(level + 1, f"{item}\n")
        else:
            text = "true" if v is True else "false" if v is False else str(v)
            w.write(level, f"{label}:\t{text}\n")


def describe_generic(ctx, obj: dict, rt) -> str:
    w = Writer()
    md = obj.get("metadata") or {}
    _header(w, obj, rt.namespaced)
    _multiline(w, 0, "Labels", md.get("labels"))
    _multiline(w, 0, "Annotations", md.get("annotations"), skip=(LAST_APPLIED,))
    skip = {"metadata.name", "metadata.namespace", "metadata.labels", "metadata.annotations",
            "metadata.managedFields"}
    _generic_fields(w, 0, obj, skip)
    if ctx.show_events:
        _write_events(w, _events(ctx, obj, rt))
    return w.text()


DESCRIBERS = {("", "Pod"): describe_pod, ("", "Service"): describe_service, ("", "Node"): describe_node,
              ("", "Namespace"): describe_namespace, ("", "ConfigMap"): describe_configmap,
              ("", "Secret"): describe_secret}


# ------------------------------------------------------------------ command
def run(ctx, args) -> int:
    if not args.types:
        raise CLIError('You must specify the type of resource to describe. Use "pkctl api-resources" for a '
                       'complete list of supported resources.')
    ctx.show_events = args.show_events
    targets = resolve_targets(args.types, ctx.discovery)
    client = ctx.client
    texts: list[str] = []
    failures: list[str] = []
    for t in targets:
        ns = None if (not t.rt.namespaced or args.all_namespaces) else ctx.namespace
        objs: list[dict] = []
        if t.names:
            for name in t.names:
                try:
                    objs.append(client.get(t.rt, name, ns))
                except NotFound as e:
                    # kubectl falls back to a name-prefix match
                    items, _ = client.list_all(t.rt, ns, label_selector=args.selector or None)
                    matches = [o for o in items if o["metadata"]["name"].startswith(name)]
                    if matches:
                        objs.extend(matches)
                    else:
                        failures.append(format_api_error(e, ctx.server))
        else:
            objs, _ = client.list_all(t.rt, ns, label_selector=args.selector or None)
        describer = DESCRIBERS.get((t.rt.group, t.rt.kind), describe_generic)
        for obj in objs:
            obj.setdefault("kind", t.rt.kind)
            obj.setdefault("apiVersion", t.rt.api_version)
            texts.append(describer(ctx, obj, t.rt))
    if texts:
        ctx.out.write("\n\n".join(texts))
        ctx.out.flush()
    elif not failures:
        where = "" if args.all_namespaces or not any(t.rt.namespaced for t in targets) \
            else f" in {ctx.namespace} namespace"
        ctx.warn(f"No resources found{where}.")
    for f in failures:
        ctx.warn(f)
    return 1 if failures else 0
