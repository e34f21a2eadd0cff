"""Per-resource behaviour ("strategies") on top of the generic object store.

The REST handlers are the same for every resource; what differs lives here:
where an object is stored (its key), what the server fills in on create,
what a user may change on update (spec vs status), which field selectors a
resource supports, and side effects that must happen in the same transaction
as the write: Service ClusterIP and NodePort allocation (one allocation key
per IP/port in the same log, so two API servers can never hand out the same
address), graceful pod deletion, and finalizers.

Functions named ``*_txn`` run inside a storage transaction under the global
write lock (see storage/log.py), so read-check-write is atomic without retry
loops. They raise StatusError to abort only their own operation.
"""
from __future__ import annotations

import ipaddress
import os
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import orjson

from api import resources as R
from api.defaults import apply_defaults
from api.validation import validate, validate_update

from . import errors
from .storage.log import KeyExists, KeyNotFound, RevisionConflict, Row, Tx, dumps, with_revision

NODE_PORT_RANGE = (30000, 32767)
RESERVED_SERVICE_IPS = 16  # never handed out dynamically (kubernetes .1, DNS .10, ...)


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: str) -> datetime:
    return datetime.strptime(s[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------ keys
def key_for(rt: R.ResourceType, namespace: str | None, name: str) -> str:
    if rt.namespaced:
        return f"/registry/{rt.key_group}/{rt.plural}/{namespace}/{name}"
    return f"/registry/{rt.key_group}/{rt.plural}/{name}"


def prefix_for(rt: R.ResourceType, namespace: str | None) -> str:
    if rt.namespaced and namespace:
        return f"/registry/{rt.key_group}/{rt.plural}/{namespace}/"
    return f"/registry/{rt.key_group}/{rt.plural}/"


def name_from_key(key: str) -> str:
    return key.rsplit("/", 1)[1]


# ------------------------------------------------------------------ field selectors
def _get_path(obj: dict, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _as_field(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


COMMON_FIELDS = ("metadata.name", "metadata.namespace")
FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Event": ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    "Node": ("spec.unschedulable",),
    "Namespace": ("status.phase",),
    "Service": ("spec.clusterIP", "spec.type"),
}


def supported_fields(kind: str) -> tuple[str, ...]:
    return COMMON_FIELDS + FIELDS.get(kind, ())


def field_getter(kind: str, obj: dict) -> Callable[[str], str]:
    def get(field: str) -> str:
        if kind == "Event" and field == "source":
            return _as_field(obj.get("reportingComponent") or _get_path(obj, "source.component"))
        if field == "metadata.namespace" and "namespace" not in obj.get("metadata", {}):
            return ""
        return _as_field(_get_path(obj, field))

    return get


# ------------------------------------------------------------------ create
# UIDs and generated names need uniqueness, not secrecy: a PRNG seeded once from
# the OS is enough, and it keeps a GIL-releasing syscall off the request path
# (with the storage writer thread running, every such release can cost a
# whole GIL switch interval).
_rng = random.Random(int.from_bytes(os.urandom(16), "big") ^ time.time_ns())


def _new_uid() -> str:
    return str(uuid.UUID(int=_rng.getrandbits(128), version=4))


def _random_suffix(n: int = 5) -> str:
    # Kubernetes avoids vowels and confusable characters in generated names.
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(_rng.choice(alphabet) for _ in range(n))


def prepare_create(rt: R.ResourceType, obj: dict, namespace: str | None) -> dict:
    """Fill what the server owns on create; returns the object ready to validate."""
    md = obj.get("metadata")
    if not isinstance(md, dict):
        md = obj["metadata"] = {}
    obj["kind"] = rt.kind
    obj["apiVersion"] = rt.api_version
    if not md.get("name") and md.get("generateName"):
        md["name"] = f"{md['generateName']}{_random_suffix()}"
    if rt.namespaced:
        md["namespace"] = namespace
    else:
        md.pop("namespace", None)
    md["uid"] = _new_uid()
    md["creationTimestamp"] = now_rfc3339()
    md.pop("deletionTimestamp", None)
    md.pop("deletionGracePeriodSeconds", None)
    md.pop("managedFields", None)
    md.pop("selfLink", None)
    if "spec" in obj:
        md["generation"] = 1
    if rt.kind == "Pod":
        st = obj.get("status") or {}
        # Status is written by components, not by whoever creates the pod.
        obj["status"] = {"phase": "Pending"}
        if isinstance(st, dict) and st.get("qosClass"):
            obj["status"]["qosClass"] = st["qosClass"]
        spec = obj.get("spec") or {}
        if isinstance(spec, dict) and spec.get("nodeName"):
            obj["status"]["conditions"] = [_scheduled_condition()]
    elif rt.kind == "Namespace":
        obj["status"] = {"phase": "Active"}
    elif rt.kind == "Service":
        obj.setdefault("status", {"loadBalancer": {}})
    elif rt.kind == "Event":
        if not obj.get("firstTimestamp"):
            obj["firstTimestamp"] = md["creationTimestamp"]
        if not obj.get("lastTimestamp"):
            obj["lastTimestamp"] = obj["firstTimestamp"]
    apply_defaults(rt.kind, obj)
    return obj


def _scheduled_condition() -> dict:
    return {"type": "PodScheduled", "status": "True", "lastProbeTime": None,
            "lastTransitionTime": now_rfc3339()}


def validate_create(rt: R.ResourceType, obj: dict) -> None:
    md = obj["metadata"]
    causes = []
    if md.get("resourceVersion"):
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                       "message": f'Invalid value: "{md["resourceVersion"]}": must be empty'})
    causes.extend(validate(rt.kind, obj))
    if causes:
        raise errors.invalid(rt.kind, md.get("name") or md.get("generateName") or "", causes, rt.group)


# ------------------------------------------------------------------ allocation
class ServiceAllocator:
    """ClusterIP and NodePort allocation, one key per address in the same log."""

    def __init__(self, cidr: str, node_ports: tuple[int, int] = NODE_PORT_RANGE):
        self.net = ipaddress.ip_network(cidr, strict=True)
        if self.net.version != 4:
            raise ValueError("only IPv4 service ranges are supported")
        self.node_ports = node_ports

    @property
    def first_ip(self) -> str:
        return str(self.net.network_address + 1)

    def _ip_key(self, ip: str) -> str:
        return f"/registry/ranges/serviceips/{ip}"

    def _port_key(self, port: int) -> str:
        return f"/registry/ranges/servicenodeports/{port}"

    def allocate_ip(self, tx: Tx, owner: str, requested: str | None) -> str:
        if requested:
            try:
                ip = ipaddress.ip_address(requested)
            except ValueError:
                raise _field_invalid("spec.clusterIPs[0]", requested, "must be a valid IP address")
            if ip not in self.net or ip == self.net.network_address or ip == self.net.broadcast_address:
                raise _field_invalid(
                    "spec.clusterIPs[0]", requested,
                    f"provided IP is not in the valid range. The range of valid IPs is {self.net}")
            try:
                tx.create(self._ip_key(str(ip)), owner.encode())
            except KeyExists:
                raise _field_invalid("spec.clusterIPs[0]", requested, "provided IP is already allocated")
            return str(ip)
        size = self.net.num_addresses
        lo, hi = RESERVED_SERVICE_IPS, size - 2
        if hi < lo:
            raise errors.StatusError(500, "InternalError", "service IP range too small")
        for _ in range(32):
            ip = str(self.net.network_address + random.randint(lo, hi))
            if not tx.exists(self._ip_key(ip)):
                tx.create(self._ip_key(ip), owner.encode())
                return ip
        used = {name_from_key(r.key) for r in tx.list("/registry/ranges/serviceips/")}
        for off in range(lo, hi + 1):
            ip = str(self.net.network_address + off)
            if ip not in used:
                tx.create(self._ip_key(ip), owner.encode())
                return ip
        raise _field_invalid("spec.clusterIPs[0]", "", "range is full: no free service IPs")

    def release_ip(self, tx: Tx, ip: str | None) -> None:
        if ip and ip != "None":
            try:
                tx.delete(self._ip_key(ip))
            except KeyNotFound:
                pass

    def allocate_port(self, tx: Tx, owner: str, requested: int | None, field: str) -> int:
        lo, hi = self.node_ports
        if requested:
            if not lo <= requested <= hi:
                raise _field_invalid(field, requested, f"provided port is not in the valid range. The range of valid ports is {lo}-{hi}")
            try:
                tx.create(self._port_key(requested), owner.encode())
            except KeyExists:
                raise _field_invalid(field, requested, "provided port is already allocated")
            return requested
        for _ in range(32):
            p = random.randint(lo, hi)
            if not tx.exists(self._port_key(p)):
                tx.create(self._port_key(p), owner.encode())
                return p
        used = {int(name_from_key(r.key)) for r in tx.list("/registry/ranges/servicenodeports/")}
        for p in range(lo, hi + 1):
            if p not in used:
                tx.create(self._port_key(p), owner.encode())
                return p
        raise _field_invalid(field, 0, "range is full: no free node ports")

    def release_port(self, tx: Tx, port: int | None) -> None:
        if port:
            try:
                tx.delete(self._port_key(int(port)))
            except KeyNotFound:
                pass

    # -- whole-service helpers
    @staticmethod
    def wants_node_ports(svc: dict) -> bool:
        return (svc.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer")

    @staticmethod
    def wants_cluster_ip(svc: dict) -> bool:
        spec = svc.get("spec") or {}
        return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"

    def allocate_service(self, tx: Tx, svc: dict, old: dict | None) -> None:
        owner = f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        spec = svc.setdefault("spec", {})
        old_spec = (old or {}).get("spec") or {}
        if self.wants_cluster_ip(svc):
            old_ip = old_spec.get("clusterIP")
            if old and old_ip and old_ip != "None":
                spec["clusterIP"] = old_ip
            else:
                spec["clusterIP"] = self.allocate_ip(tx, owner, spec.get("clusterIP") or None)
            spec["clusterIPs"] = [spec["clusterIP"]]
        elif spec.get("clusterIP") == "None":
            spec["clusterIPs"] = ["None"]
        else:
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            if old_spec.get("clusterIP") and old_spec.get("clusterIP") != "None":
                self.release_ip(tx, old_spec["clusterIP"])
        old_ports = {}
        for p in old_spec.get("ports") or []:
            if p.get("nodePort"):
                old_ports[(p.get("port"), p.get("protocol", "TCP"))] = p["nodePort"]
        kept = set()
        if self.wants_node_ports(svc):
            for i, p in enumerate(spec.get("ports") or []):
                prev = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                want = p.get("nodePort")
                if prev and (not want or want == prev):
                    p["nodePort"] = prev
                    kept.add(prev)
                else:
                    p["nodePort"] = self.allocate_port(tx, owner, want, f"spec.ports[{i}].nodePort")
        else:
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
        for prev in old_ports.values():
            if prev not in kept:
                self.release_port(tx, prev)

    def release_service(self, tx: Tx, svc: dict) -> None:
        spec = svc.get("spec") or {}
        self.release_ip(tx, spec.get("clusterIP"))
        for p in spec.get("ports") or []:
            self.release_port(tx, p.get("nodePort"))


def _field_invalid(field: str, value: Any, why: str) -> errors.StatusError:
    v = f'"{value}"' if isinstance(value, str) else value
    return errors.StatusError(422, "Invalid", f"{field}: Invalid value: {v}: {why}",
                              {"causes": [{"reason": "FieldValueInvalid", "field": field,
                                           "message": f"Invalid value: {v}: {why}"}]})


def _reword_invalid(e: errors.StatusError, rt: R.ResourceType, name: str) -> errors.StatusError:
    if e.code == 422 and e.details and "causes" in e.details and "kind" not in e.details:
        return errors.invalid(rt.kind, name, e.details["causes"], rt.group)
    return e


# ------------------------------------------------------------------ the registry
class Registry:
    """Runs the verbs for every resource against one Storage."""

    def __init__(self, storage, allocator: ServiceAllocator):
        self.storage = storage
        self.alloc = allocator

    # -- helpers
    @staticmethod
    def decode(row: Row) -> dict:
        return with_revision(row.value, row.rev)

    def _ensure_namespace(self, tx: Tx, rt: R.ResourceType, namespace: str | None) -> None:
        if not rt.namespaced:
            return
        row = tx.get(key_for(R.NAMESPACES, None, namespace))
        if row is None:
            raise errors.not_found("namespaces", namespace)
        ns = orjson.loads(row.value)
        if ns.get("metadata", {}).get("deletionTimestamp") and rt.kind != "Event":
            raise errors.StatusError(
                403, "Forbidden",
                f'{rt.plural} "{""}" is forbidden: unable to create new content in namespace {namespace} because it is being terminated',
                {"kind": rt.plural, "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                                "message": f"namespace {namespace} is being terminated"}]})

    # -- create
    def create_txn(self, rt: R.ResourceType, obj: dict) -> Callable[[Tx], dict]:
        """obj is already prepared and validated; returns the txn function."""
        ns = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        key = key_for(rt, ns, name)

        def op(tx: Tx) -> dict:
            self._ensure_namespace(tx, rt, ns)
            if tx.exists(key):
                raise errors.already_exists(rt.plural, name, rt.group)
            if rt.kind == "Service":
                try:
                    self.alloc.allocate_service(tx, obj, None)
                except errors.StatusError as e:
                    raise _reword_invalid(e, rt, name)
            rev = tx.create(key, dumps(obj))
            obj["metadata"]["resourceVersion"] = str(rev)
            return obj

        return op

    # -- update (PUT, also used by patch)
    def update_txn(self, rt: R.ResourceType, namespace: str | None, name: str,
                   mutate: Callable[[dict | None], dict], subresource: str | None = None,
                   allow_create: bool = False, check_rv: bool = True) -> Callable[[Tx], tuple[dict, bool]]:
        """mutate(old_or_None) returns the requested new object (never mutating old).

        Returns (object, created). A resourceVersion in the new object is a
        precondition (409 on mismatch); without one the update is unconditional.
        """
        key = key_for(rt, namespace, name)

        def op(tx: Tx) -> tuple[dict, bool]:
            row = tx.get(key)
            if row is None:
                if not allow_create:
                    raise errors.not_found(rt.plural, name, rt.group)
                new = mutate(None)
                new.setdefault("metadata", {})["name"] = name
                md = new["metadata"]
                md.pop("resourceVersion", None)
                prepare_create(rt, new, namespace)
                validate_create(rt, new)
                return self.create_txn(rt, new)(tx), True
            old = self.decode(row)
            new = mutate(old)
            if not isinstance(new, dict):
                raise errors.bad_request("the request body must be a JSON object")
            md = new.get("metadata")
            if not isinstance(md, dict):
                md = new["metadata"] = {}
            want_rv = md.get("resourceVersion")
            if check_rv and want_rv and str(want_rv) != str(row.rev):
                raise errors.conflict(rt.plural, name, "the object has been modified; please apply your changes to the latest version and try again", rt.group)
            if md.get("name") and md["name"] != name:
                raise errors.bad_request(f'the name of the object ({md["name"]}) does not match the name on the URL ({name})')
            if rt.namespaced and md.get("namespace") and md["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
            new = self._merge_owned(rt, old, new, subresource)
            apply_defaults(rt.kind, new)
            causes = validate_update(rt.kind, new, old)
            if causes:
                raise errors.invalid(rt.kind, name, causes, rt.group)
            if rt.kind == "Service" and subresource is None:
                try:
                    self.alloc.allocate_service(tx, new, old)
                except errors.StatusError as e:
                    raise _reword_invalid(e, rt, name)
            nmd = new["metadata"]
            if nmd.get("deletionTimestamp") and not nmd.get("finalizers") and \
                    not nmd.get("deletionGracePeriodSeconds"):
                # The last finalizer went away on an object being deleted: remove it.
                return self._finish_delete(tx, rt, key, new), False
            if _same(old, new):
                return old, False  # a no-op update writes nothing, like Kubernetes
            rev = tx.update(key, dumps(new), row.rev)
            nmd["resourceVersion"] = str(rev)
            return new, False

        return op

    @staticmethod
    def _merge_owned(rt: R.ResourceType, old: dict, new: dict, subresource: str | None) -> dict:
        """Keep what this request may not change: server metadata, and spec vs status."""
        if subresource == "status":
            merged = {k: v for k, v in old.items()}
            merged["status"] = new.get("status", old.get("status"))
            md = dict(old["metadata"])
            # Kubernetes lets status writers touch labels and annotations too.
            for k in ("labels", "annotations"):
                if k in new.get("metadata", {}):
                    md[k] = new["metadata"][k]
            merged["metadata"] = md
            return merged
        new = dict(new)
        md = dict(new.get("metadata") or {})
        omd = old["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                  "generation", "resourceVersion"):
            if k in omd:
                md[k] = omd[k]
            else:
                md.pop(k, None)
        if rt.namespaced:
            md["namespace"] = omd.get("namespace")
        md["name"] = omd["name"]
        md.pop("managedFields", None)
        new["metadata"] = md
        new["kind"] = rt.kind
        new["apiVersion"] = rt.api_version
        if rt.kind in ("Pod", "Service", "Node", "Namespace", "Ingress") and "status" in old:
            new["status"] = old["status"]
        if "generation" in omd and new.get("spec") != old.get("spec"):
            md["generation"] = int(omd.get("generation") or 0) + 1
        return new

    # -- delete
    def delete_txn(self, rt: R.ResourceType, namespace: str | None, name: str, opts: dict) -> Callable[[Tx], dict]:
        key = key_for(rt, namespace, name)

        def op(tx: Tx) -> dict:
            row = tx.get(key)
            if row is None:
                raise errors.not_found(rt.plural, name, rt.group)
            obj = self.decode(row)
            return self._delete_obj(tx, rt, key, row, obj, opts)

        return op

    def _delete_obj(self, tx: Tx, rt: R.ResourceType, key: str, row: Row, obj: dict, opts: dict) -> dict:
        md = obj["metadata"]
        name = md["name"]
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise errors.conflict(rt.plural, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {md.get('uid')}", rt.group)
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(row.rev):
            raise errors.conflict(rt.plural, name, f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in object meta: {row.rev}", rt.group)
        grace = opts.get("gracePeriodSeconds")
        if rt.kind == "Pod":
            spec = obj.get("spec") or {}
            if grace is None:
                grace = spec.get("terminationGracePeriodSeconds", 30)
            grace = max(0, int(grace))
            phase = (obj.get("status") or {}).get("phase")
            # Kubernetes deletes at once what no kubelet would clean up.
            if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
                grace = 0
        elif rt.kind == "Namespace":
            return self._delete_namespace(tx, rt, key, row, obj)
        else:
            grace = 0
        finalizers = md.get("finalizers") or []
        if grace > 0:
            cur = md.get("deletionGracePeriodSeconds")
            if md.get("deletionTimestamp") and cur is not None and cur <= grace:
                return obj  # already terminating with an equal or shorter grace period
            md["deletionTimestamp"] = (datetime.now(timezone.utc) + timedelta(seconds=grace)).strftime("%Y-%m-%dT%H:%M:%SZ")
            md["deletionGracePeriodSeconds"] = grace
            md["generation"] = int(md.get("generation") or 0) + 1
            rev = tx.update(key, dumps(obj), row.rev)
            md["resourceVersion"] = str(rev)
            return obj
        if finalizers:
            changed = False
            if not md.get("deletionTimestamp"):
                md["deletionTimestamp"] = now_rfc3339()
                changed = True
            if md.get("deletionGracePeriodSeconds") != 0:
                md["deletionGracePeriodSeconds"] = 0
                changed = True
            if changed:
                rev = tx.update(key, dumps(obj), row.rev)
                md["resourceVersion"] = str(rev)
            return obj
        if not md.get("deletionTimestamp"):
            md["deletionTimestamp"] = now_rfc3339()
            md["deletionGracePeriodSeconds"] = 0
        return self._finish_delete(tx, rt, key, obj)

    def _finish_delete(self, tx: Tx, rt: R.ResourceType, key: str, obj: dict) -> dict:
        rev, _ = tx.delete(key, final_value=dumps(obj))
        if rt.kind == "Service":
            self.alloc.release_service(tx, obj)
        obj["metadata"]["resourceVersion"] = str(rev)
        return obj

    def _delete_namespace(self, tx: Tx, rt: R.ResourceType, key: str, row: Row, obj: dict) -> dict:
        name = obj["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise errors.StatusError(403, "Forbidden", f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                                     {"name": name, "kind": "namespaces"})
        md = obj["metadata"]
        if not md.get("deletionTimestamp"):
            md["deletionTimestamp"] = now_rfc3339()
            md["deletionGracePeriodSeconds"] = 0
            obj.setdefault("status", {})["phase"] = "Terminating"
            rev = tx.update(key, dumps(obj), row.rev)
            md["resourceVersion"] = str(rev)
        return obj

    # -- binding
    def bind_txn(self, namespace: str, pod_name: str, node_name: str, uid: str | None = None) -> Callable[[Tx], dict]:
        key = key_for(R.PODS, namespace, pod_name)

        def op(tx: Tx) -> dict:
            row = tx.get(key)
            if row is None:
                raise errors.not_found("pods", pod_name)
            pod = self.decode(row)
            if uid and pod["metadata"].get("uid") != uid:
                # A decision made for a pod that was deleted and recreated under the same name.
                raise errors.conflict("pods/binding", pod_name, f"Precondition failed: UID in precondition: {uid}, UID in object meta: {pod['metadata'].get('uid')}")
            spec = pod.setdefault("spec", {})
            if spec.get("nodeName"):
                raise errors.conflict("pods/binding", pod_name, f"pod {pod_name} is already assigned to node \"{spec['nodeName']}\"")
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict("pods/binding", pod_name, "pod is being deleted, cannot be assigned to a host")
            spec["nodeName"] = node_name
            st = pod.setdefault("status", {})
            conds = [c for c in st.get("conditions") or [] if c.get("type") != "PodScheduled"]
            conds.append(_scheduled_condition())
            st["conditions"] = conds
            rev = tx.update(key, dumps(pod), row.rev)
            pod["metadata"]["resourceVersion"] = str(rev)
            return pod

        return op


PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def _same(a: dict, b: dict) -> bool:
    def strip(o: dict) -> dict:
        o = dict(o)
        md = dict(o.get("metadata") or {})
        md.pop("resourceVersion", None)
        o["metadata"] = md
        return o

    return strip(a) == strip(b)


__all__ = [
    "Registry", "ServiceAllocator", "key_for", "prefix_for", "prepare_create", "validate_create",
    "field_getter", "supported_fields", "now_rfc3339", "KeyExists", "RevisionConflict",
]
