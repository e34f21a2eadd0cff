"""Pod (core/v1): the strategy of the kind everything else exists to run.

On create the server owns the status (Pending, plus PodScheduled when the
pod names its node); defaults and validation of the spec are api/podspec.py's
(shared with pod templates), the pod's own are here: its status, the update
rule (only images, activeDeadlineSeconds, added tolerations and the grace
period may change), the grace period a delete gets (none for a pod no
kubelet runs), binding to a node, the field selectors the kubelet and the
scheduler watch with, and kubectl's columns with their STATUS logic.
"""
from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from api.defaults import ensure_dict, set_default, unset
from api.kinds.base import Conflict, Strategy
from api.meta import now
from api.podspec import check_pod_spec, default_pod_spec, qos_class
from api.tables import Printer, age_col, aware, col, get, human_duration, name_col, parse_time, since
from api.validation import Cause, Errs, forbidden, go_value, invalid, is_int, is_ip, name_is_dns_subdomain


COLUMNS = [
    name_col(),
    col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "The aggregate status of the containers in this pod."),
    col("Restarts", "The number of times the containers in this pod have been restarted and "
                    "when the last container in this pod has restarted."),
    age_col(),
    col("IP", "podIP address allocated to the pod. Routable at least within the cluster. "
              "Empty if not yet allocated.", priority=1),
    col("Node", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a "
                "candidate for scheduling by the scheduler defined in schedulerName. Once this "
                "field is set, the kubelet for this node becomes responsible for the lifecycle "
                "of this pod. This field should not be used to express a desire for the pod to "
                "be scheduled on a specific node. "
                "https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename",
         priority=1),
    col("Nominated Node", "nominatedNodeName is set only when this pod preempts other pods on the "
                          "node, but it cannot be scheduled right away as preemption victims "
                          "receive their graceful termination periods. This field does not "
                          "guarantee that the pod will be scheduled on this node. Scheduler may "
                          "decide to place the pod elsewhere if other nodes become available "
                          "sooner. Scheduler may also decide to give the resources on this node "
                          "to a higher priority pod that is created after preemption. As a "
                          "result, this field may be different than PodSpec.nodeName when the "
                          "pod is scheduled.", priority=1),
    col("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness. "
                           "A pod is ready when all its containers are ready AND all conditions "
                           "specified in the readiness gates have status equal to \"True\" More "
                           "info: https://git.k8s.io/enhancements/keps/sig-network/"
                           "580-pod-readiness-gates", priority=1),
]


_NODE_UNREACHABLE_POD_REASON = "NodeLost"


def _is_restartable_init(container: dict | None) -> bool:
    return bool(container) and container.get("restartPolicy") == "Always"


def _has_condition(conditions: list | None, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in conditions or [])


def _pod_cells(pod: dict, now: datetime) -> list:
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    meta = pod.get("metadata") or {}
    conditions = status.get("conditions") or []

    restarts = 0
    restartable_init_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: datetime | None = None
    last_restartable_init_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}
    for c in spec.get("initContainers") or []:
        if _is_restartable_init(c):
            total += 1

    def later(a: datetime | None, b: Any) -> datetime | None:
        t = parse_time(b)
        if t is not None and (a is None or a < t):
            return t
        return a

    n_init = len(spec.get("initContainers") or [])
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        last_term = get(cs, "lastState", "terminated")
        if last_term is not None:
            last_restart = later(last_restart, last_term.get("finishedAt"))
        restartable = _is_restartable_init(init_specs.get(cs.get("name")))
        if restartable:
            restartable_init_restarts += int(cs.get("restartCount") or 0)
            if last_term is not None:
                last_restartable_init_restart = later(last_restartable_init_restart,
                                                      last_term.get("finishedAt"))
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if restartable and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if not term.get("reason"):
                if term.get("signal"):
                    reason = f"Init:Signal:{term['signal']}"
                else:
                    reason = f"Init:ExitCode:{term.get('exitCode') or 0}"
            else:
                reason = "Init:" + term["reason"]
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{n_init}"
        initializing = True
        break

    if not initializing or _has_condition(conditions, "Initialized"):
        restarts = restartable_init_restarts
        last_restart = last_restartable_init_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_term = get(cs, "lastState", "terminated")
            if last_term is not None:
                last_restart = later(last_restart, last_term.get("finishedAt"))
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                if term.get("signal"):
                    reason = f"Signal:{term['signal']}"
                else:
                    reason = f"ExitCode:{term.get('exitCode') or 0}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A container that exited with Completed while another still runs.
        if reason == "Completed" and has_running:
            reason = "Running" if _has_condition(conditions, "Ready") else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == _NODE_UNREACHABLE_POD_REASON:
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_str = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_str = f"{restarts} ({human_duration((aware(now) - last_restart).total_seconds())} ago)"

    pod_ips = status.get("podIPs") or []
    pod_ip = (pod_ips[0].get("ip") if pod_ips else "") or status.get("podIP") or "<none>"
    gates = spec.get("readinessGates") or []
    gates_str = "<none>"
    if gates:
        true_count = 0
        for g in gates:
            for c in conditions:
                if c.get("type") == g.get("conditionType"):
                    if c.get("status") == "True":
                        true_count += 1
                    break
        gates_str = f"{true_count}/{len(gates)}"

    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_str,
        since(meta.get("creationTimestamp"), now),
        pod_ip,
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_str,
    ]



def _completed(obj: dict) -> list[dict] | None:
    """Row conditions: kube marks Succeeded and Failed pods `Completed`."""
    phase = get(obj, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return None


def _pod_status(e: Errs, status: dict) -> None:
    for key in ("podIP", "hostIP"):
        ip = e.string(status, key, f"status.{key}")
        if ip:
            e.msgs(f"status.{key}", ip, is_ip(ip))
    for key in ("podIPs", "hostIPs"):
        for p, item in e.objects(status, key, f"status.{key}"):
            ip = e.string(item, "ip", f"{p}.ip")
            e.msgs(f"{p}.ip", ip, is_ip(ip))
    e.string(status, "phase", "status.phase")
    e.objects(status, "conditions", "status.conditions")


def _normalized(v: Any) -> Any:
    """Drop JSON values Go would decode to a zero value, so `"x": ""` equals a missing x."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            x = _normalized(x)
            if x is None or x == "" or x is False or x == [] or x == {}:
                continue
            out[k] = x
        return out
    if isinstance(v, list):
        return [_normalized(x) for x in v]
    return v


def _diff(old: Any, new: Any, path: str, out: list[str], limit: int = 5) -> None:
    if len(out) >= limit or old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            _diff(old.get(k), new.get(k), f"{path}.{k}", out, limit)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            _diff(a, b, f"{path}[{i}]", out, limit)
    else:
        out.append(f"  {path}: {go_value(old)} -> {go_value(new)}")


def _toleration_key(t: Any) -> Any:
    if not isinstance(t, dict):
        return t
    return {k: t.get(k) or "" for k in ("key", "operator", "value", "effect")}


def _pod_update(new: dict, old: dict) -> list[Cause]:
    new_spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return []
    causes: list[Cause] = []
    munged = copy.deepcopy(new_spec)
    for key in ("containers", "initContainers"):
        n, o = munged.get(key) or [], old_spec.get(key) or []
        if not isinstance(n, list) or not isinstance(o, list):
            continue
        if len(n) != len(o):
            causes.append(forbidden(f"spec.{key}", "pod updates may not add or remove containers"))
            return causes
        for nc, oc in zip(n, o):
            if isinstance(nc, dict) and isinstance(oc, dict):
                nc.pop("image", None)
                if "image" in oc:
                    nc["image"] = oc["image"]

    deadline, old_deadline = new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if is_int(deadline):
        if is_int(old_deadline) and old_deadline < deadline:
            causes.append(invalid("spec.activeDeadlineSeconds", deadline,
                                  "must be less than or equal to previous value"))
    elif deadline is None and old_deadline is not None:
        causes.append(invalid("spec.activeDeadlineSeconds", None,
                              "must not update from a positive integer to nil value"))

    # Existing tolerations stay (only their tolerationSeconds may change); new ones may be added.
    new_tols, old_tols = new_spec.get("tolerations"), old_spec.get("tolerations")
    new_keys = [_toleration_key(t) for t in new_tols] if isinstance(new_tols, list) else []
    if isinstance(old_tols, list) and any(_toleration_key(t) not in new_keys for t in old_tols):
        causes.append(forbidden("spec.tolerations",
                                "existing toleration can not be modified except its tolerationSeconds"))

    # Deliberately wider than Kubernetes, which only lets a negative grace period become 1.
    for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
        munged.pop(key, None)
        if key in old_spec:
            munged[key] = old_spec[key]
    a, b = _normalized(old_spec), _normalized(munged)
    if a != b:
        lines: list[str] = []
        _diff(a, b, "spec", lines)
        causes.append(forbidden("spec", f"pod updates may not change fields other than {POD_MUTABLE_FIELDS}\n"
                                + "\n".join(lines)))
    return causes


POD_MUTABLE_FIELDS = (
    "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
    "`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds`"
)


def scheduled_condition() -> dict:
    return {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}


class PodStrategy(Strategy):
    protobuf = "k8s.io.api.core.v1.Pod"   # its message in the schema (api/protobuf)
    name_fn = staticmethod(name_is_dns_subdomain)
    fields = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
              "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName")
    printer = Printer(COLUMNS, _pod_cells, _completed)

    def prepare_for_create(self, obj: dict) -> None:
        st = obj.get("status") or {}
        # Status is written by components, not by whoever creates the pod.
        obj["status"] = {"phase": "Pending"}
        if isinstance(st, dict) and st.get("qosClass"):
            obj["status"]["qosClass"] = st["qosClass"]
        spec = obj.get("spec") or {}
        if isinstance(spec, dict) and spec.get("nodeName"):
            obj["status"]["conditions"] = [scheduled_condition()]

    def default(self, obj: dict) -> None:
        spec = ensure_dict(obj, "spec")
        if spec is not None:
            default_pod_spec(spec)
        status = ensure_dict(obj, "status")
        if status is not None:
            set_default(status, "phase", "Pending")
            if unset(status, "qosClass"):
                status["qosClass"] = qos_class(obj)

    def check(self, e: Errs, obj: dict) -> None:
        check_pod_spec(e, e.obj(obj, "spec", "spec"))
        _pod_status(e, e.obj(obj, "status", "status"))

    def check_update(self, new: dict, old: dict, causes: list[Cause]) -> list[Cause]:
        return causes + _pod_update(new, old)

    def grace_period(self, obj: dict, requested: int | None) -> int:
        spec = obj.get("spec") or {}
        grace = spec.get("terminationGracePeriodSeconds", 30) if requested is None else requested
        phase = (obj.get("status") or {}).get("phase")
        # Kubernetes deletes at once what no kubelet would clean up.
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        return max(0, int(grace))

    @staticmethod
    def bind(pod: dict, node_name: str, uid: str | None) -> None:
        """Assign pod to node_name in place (the pods/binding subresource); Conflict when it cannot be."""
        name = pod["metadata"]["name"]
        if uid and pod["metadata"].get("uid") != uid:
            # A decision made for a pod that was deleted and recreated under the same name.
            raise Conflict(f"Precondition failed: UID in precondition: {uid}, UID in object meta: {pod['metadata'].get('uid')}")
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise Conflict(f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
        if pod["metadata"].get("deletionTimestamp"):
            raise Conflict("pod is being deleted, cannot be assigned to a host")
        spec["nodeName"] = node_name
        st = pod.setdefault("status", {})
        conds = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append(scheduled_condition())
        st["conditions"] = conds
