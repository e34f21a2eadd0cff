"""The generic registry: every verb's storage work, the same for every resource.

What differs between kinds is not here but in the kind's strategy
(api/kinds/, named by its row in api/resources.py): what the server fills
in on create, validation, what a spec or status write may change, the
allocation a create needs (Service ClusterIPs and NodePorts), the grace
period of a delete and whether a delete leaves the object terminating.
This module asks ``rt.strategy`` at each of those points and does the rest
itself: keys, the server-owned metadata, preconditions, finalizers, the
namespace checks, and the allocation keys the strategy reserves (one key
per IP/port in the same log as the objects, so two API servers can never
hand out the same address; ``TxAllocations``).

Functions named ``*_txn`` return an operation that runs inside a storage
transaction under the global write lock (see storage/log.py), so
read-check-write is atomic without retry loops. They raise StatusError to
abort only their own operation; the strategies' refusals (Invalid, Conflict,
Forbidden) become StatusErrors here.
"""
from __future__ import annotations

import os
import random
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterator

import orjson

from api import resources as R
from api.kinds.base import Conflict, Forbidden, InternalError, Invalid
from api.kinds.service import ServiceAllocator
from api.meta import RFC3339, now

from . import errors
from .storage.log import KeyExists, KeyNotFound, RevisionConflict, Row, Tx, dumps, with_revision


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
    """Fill what the server owns on create, then the kind's own part and its defaults."""
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
    md["creationTimestamp"] = now()
    md.pop("deletionTimestamp", None)
    md.pop("deletionGracePeriodSeconds", None)
    md.pop("managedFields", None)
    md.pop("selfLink", None)
    if "spec" in obj:
        md["generation"] = 1
    rt.strategy.prepare_for_create(obj)
    rt.strategy.defaults(obj)
    return obj


def validate_create(rt: R.ResourceType, obj: dict) -> None:
    md = obj["metadata"]
    causes = []
    if md.get("resourceVersion"):
        causes.append({"reason": "FieldValueInvalid", "field": "metadata.resourceVersion",
                       "message": f'Invalid value: "{md["resourceVersion"]}": must be empty'})
    causes.extend(rt.strategy.validate(obj))
    if causes:
        raise errors.invalid(rt.kind, md.get("name") or md.get("generateName") or "", causes, rt.group)


# ------------------------------------------------------------------ allocation keys
class TxAllocations:
    """The strategies' Allocations seam on one transaction: keys under /registry/ranges/."""

    PREFIX = "/registry/ranges/"

    def __init__(self, tx: Tx, ranges: ServiceAllocator):
        self.tx = tx
        self.ranges = ranges

    def reserve(self, key: str, owner: str) -> bool:
        try:
            self.tx.create(self.PREFIX + key, owner.encode())
        except KeyExists:
            return False
        return True

    def release(self, key: str) -> None:
        try:
            self.tx.delete(self.PREFIX + key)
        except KeyNotFound:
            pass

    def is_taken(self, key: str) -> bool:
        return self.tx.exists(self.PREFIX + key)

    def taken(self, prefix: str) -> set[str]:
        return {name_from_key(r.key) for r in self.tx.list(self.PREFIX + prefix)}


@contextmanager
def _as_status(rt: R.ResourceType, name: str, plural: str | None = None) -> Iterator[None]:
    """Turn a strategy's refusal into the metav1 Status the client gets."""
    try:
        yield
    except Invalid as e:
        raise errors.invalid(rt.kind, name, e.causes, rt.group)
    except Conflict as e:
        raise errors.conflict(plural or rt.plural, name, str(e), "" if plural else rt.group)
    except Forbidden as e:
        raise errors.StatusError(403, "Forbidden", str(e), {"name": name, "kind": rt.plural})
    except InternalError as e:
        raise errors.StatusError(500, "InternalError", str(e))


# ------------------------------------------------------------------ the registry
class Registry:
    """Runs the verbs for every resource against one Storage, asking each kind's strategy."""

    def __init__(self, storage, allocator: ServiceAllocator):
        self.storage = storage
        self.alloc = allocator

    def allocations(self, tx: Tx) -> TxAllocations:
        return TxAllocations(tx, self.alloc)

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
        if ns.get("metadata", {}).get("deletionTimestamp") and not rt.strategy.create_in_terminating_namespace:
            raise errors.StatusError(
                403, "Forbidden",
                f'{rt.plural} "{""}" is forbidden: unable to create new content in namespace {namespace} because it is being terminated',
                {"kind": rt.plural, "causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                                                "message": f"namespace {namespace} is being terminated"}]})

    # -- create
    def create_txn(self, rt: R.ResourceType, obj: dict, namespace: str | None) -> Callable[[Tx], dict]:
        """The whole create: prepare and validate obj now, then the op that allocates and writes it."""
        prepare_create(rt, obj, namespace)
        validate_create(rt, obj)
        return self._insert(rt, obj)

    def _insert(self, rt: R.ResourceType, obj: dict) -> Callable[[Tx], dict]:
        ns = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        key = key_for(rt, ns, name)

        def op(tx: Tx) -> dict:
            self._ensure_namespace(tx, rt, ns)
            if tx.exists(key):
                raise errors.already_exists(rt.plural, name, rt.group)
            with _as_status(rt, name):
                rt.strategy.allocate(self.allocations(tx), obj, None)
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
        strategy = rt.strategy

        def op(tx: Tx) -> tuple[dict, bool]:
            row = tx.get(key)
            if row is None:
                if not allow_create:
                    raise errors.not_found(rt.plural, name, rt.group)
                new = mutate(None)
                new.setdefault("metadata", {})["name"] = name
                md = new["metadata"]
                md.pop("resourceVersion", None)
                return self.create_txn(rt, new, namespace)(tx), True
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
            strategy.defaults(new)
            causes = strategy.validate_update(new, old)
            if causes:
                raise errors.invalid(rt.kind, name, causes, rt.group)
            if subresource is None:
                with _as_status(rt, name):
                    strategy.allocate(self.allocations(tx), new, old)
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
            return rt.strategy.prepare_for_status_update(new, old)
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
        rt.strategy.prepare_for_update(new, old)
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
        strategy = rt.strategy
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise errors.conflict(rt.plural, name, f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {md.get('uid')}", rt.group)
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(row.rev):
            raise errors.conflict(rt.plural, name, f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in object meta: {row.rev}", rt.group)
        with _as_status(rt, name):
            strategy.check_delete(obj)
        if strategy.retain_on_delete:
            if not md.get("deletionTimestamp"):
                md["deletionTimestamp"] = now()
                md["deletionGracePeriodSeconds"] = 0
                strategy.mark_terminating(obj)
                rev = tx.update(key, dumps(obj), row.rev)
                md["resourceVersion"] = str(rev)
            return obj
        grace = strategy.grace_period(obj, opts.get("gracePeriodSeconds"))
        finalizers = md.get("finalizers") or []
        if grace > 0:
            cur = md.get("deletionGracePeriodSeconds")
            if md.get("deletionTimestamp") and cur is not None and cur <= grace:
                return obj  # already terminating with an equal or shorter grace period
            md["deletionTimestamp"] = (datetime.now(timezone.utc) + timedelta(seconds=grace)).strftime(RFC3339)
            md["deletionGracePeriodSeconds"] = grace
            md["generation"] = int(md.get("generation") or 0) + 1
            rev = tx.update(key, dumps(obj), row.rev)
            md["resourceVersion"] = str(rev)
            return obj
        if finalizers:
            changed = False
            if not md.get("deletionTimestamp"):
                md["deletionTimestamp"] = now()
                changed = True
            if md.get("deletionGracePeriodSeconds") != 0:
                md["deletionGracePeriodSeconds"] = 0
                changed = True
            if changed:
                rev = tx.update(key, dumps(obj), row.rev)
                md["resourceVersion"] = str(rev)
            return obj
        if not md.get("deletionTimestamp"):
            md["deletionTimestamp"] = now()
            md["deletionGracePeriodSeconds"] = 0
        return self._finish_delete(tx, rt, key, obj)

    def _finish_delete(self, tx: Tx, rt: R.ResourceType, key: str, obj: dict) -> dict:
        rev, _ = tx.delete(key, final_value=dumps(obj))
        rt.strategy.release(self.allocations(tx), obj)
        obj["metadata"]["resourceVersion"] = str(rev)
        return obj

    # -- binding
    def bind_txn(self, namespace: str, pod_name: str, node_name: str, uid: str | None = None) -> Callable[[Tx], dict]:
        key = key_for(R.PODS, namespace, pod_name)

        def op(tx: Tx) -> dict:
            row = tx.get(key)
            if row is None:
                raise errors.not_found("pods", pod_name)
            pod = self.decode(row)
            with _as_status(R.PODS, pod_name, "pods/binding"):
                R.PODS.strategy.bind(pod, node_name, uid)
            rev = tx.update(key, dumps(pod), row.rev)
            pod["metadata"]["resourceVersion"] = str(rev)
            return pod

        return op


def _same(a: dict, b: dict) -> bool:
    def strip(o: dict) -> dict:
        o = dict(o)
        md = dict(o.get("metadata") or {})
        md.pop("resourceVersion", None)
        o["metadata"] = md
        return o

    return strip(a) == strip(b)


__all__ = [
    "Registry", "ServiceAllocator", "TxAllocations", "key_for", "prefix_for", "prepare_create", "validate_create",
    "KeyExists", "RevisionConflict",
]
