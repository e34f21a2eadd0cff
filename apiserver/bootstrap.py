"""What the API server keeps true about itself, and its housekeeping loops.

At start: the four built-in namespaces, and the `default/kubernetes` Service
at the first service IP with Endpoints pointing at this server (every API
server adds its own address, so several servers on one database all appear).

In the background: compaction of the log (to the revision seen one interval
ago, as kube-apiserver compacts etcd), expiry of old Events (Kubernetes keeps
them an hour), and namespace finalization (a namespace being deleted has its
contents deleted, then goes away) since there is no namespace controller.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import orjson

from api import resources as R
from api.meta import parse_time

from . import errors, registry
from .registry import key_for, prefix_for
from .storage.log import Tx, dumps, with_revision

if TYPE_CHECKING:
    from .app import State

log = logging.getLogger("pocketkube.bootstrap")

BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _write(state: "State", fn):
    return await asyncio.wrap_future(state.storage.submit(fn))


async def ensure_builtins(state: "State") -> None:
    for ns in BUILTIN_NAMESPACES:
        obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "spec": {}}
        registry.prepare_create(R.NAMESPACES, obj, None)

        def op(tx: Tx, obj=obj, ns=ns):
            if not tx.exists(key_for(R.NAMESPACES, None, ns)):
                tx.create(key_for(R.NAMESPACES, None, ns), dumps(obj))

        await _write(state, op)
    await ensure_kubernetes_service(state)


async def ensure_kubernetes_service(state: "State") -> None:
    cfg = state.cfg
    reg = state.registry
    ip = reg.alloc.first_ip
    svc = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "kubernetes", "namespace": "default",
                        "labels": {"component": "apiserver", "provider": "kubernetes"}},
           "spec": {"type": "ClusterIP", "clusterIP": ip, "sessionAffinity": "None",
                    "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": cfg.port}]}}
    registry.prepare_create(R.SERVICES, svc, "default")
    skey = key_for(R.SERVICES, "default", "kubernetes")
    ekey = key_for(R.ENDPOINTS, "default", "kubernetes")

    def op(tx: Tx):
        if not tx.exists(skey):
            R.SERVICES.strategy.allocate(reg.allocations(tx), svc, None)
            tx.create(skey, dumps(svc))
        row = tx.get(ekey)
        addr = {"ip": cfg.advertise_address}
        port = {"name": "https", "port": cfg.port, "protocol": "TCP"}
        if row is None:
            ep = {"apiVersion": "v1", "kind": "Endpoints",
                  "metadata": {"name": "kubernetes", "namespace": "default",
                               "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                  "subsets": [{"addresses": [addr], "ports": [port]}]}
            registry.prepare_create(R.ENDPOINTS, ep, "default")
            tx.create(ekey, dumps(ep))
            return
        ep = orjson.loads(row.value)
        subsets = ep.get("subsets") or []
        if not subsets:
            ep["subsets"] = [{"addresses": [addr], "ports": [port]}]
        else:
            s = subsets[0]
            if all(a.get("ip") != addr["ip"] for a in s.get("addresses") or []):
                s.setdefault("addresses", []).append(addr)
            else:
                return
        tx.update(ekey, dumps(ep), row.rev)

    await _write(state, op)


async def maintenance_loop(state: "State") -> None:
    """Compact the log and expire events, every compaction interval."""
    interval = state.cfg.compaction_interval
    if interval <= 0:
        return
    previous = await asyncio.to_thread(state.storage.current_revision)
    while True:
        await asyncio.sleep(interval)
        try:
            await expire_events(state)
            removed = await asyncio.to_thread(state.storage.compact, previous)
            log.info("compacted to revision %d (%d rows removed)", previous, removed)
            previous = await asyncio.to_thread(state.storage.current_revision)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log.warning("maintenance failed: %s", e)


async def expire_events(state: "State") -> None:
    ttl = state.cfg.event_ttl
    if ttl <= 0:
        return
    rows, _ = await asyncio.to_thread(state.storage.list, prefix_for(R.EVENTS, None))
    cutoff = time.time() - ttl
    for r in rows:
        ev = orjson.loads(r.value)
        ts = ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("metadata", {}).get("creationTimestamp")
        parsed = parse_time(ts)
        t = parsed.timestamp() if parsed else 0
        if t < cutoff:
            def op(tx: Tx, key=r.key, rev=r.rev):
                row = tx.get(key)
                if row is not None and row.rev == rev:
                    tx.delete(key)

            await _write(state, op)


async def namespace_finalizer_loop(state: "State", interval: float = 1.0) -> None:
    """Empty namespaces that are being deleted, then remove them."""
    while True:
        try:
            await finalize_namespaces(state)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001
            log.warning("namespace finalizer: %s", e)
        await asyncio.sleep(interval)


async def finalize_namespaces(state: "State") -> None:
    rows, _ = await asyncio.to_thread(state.storage.list, prefix_for(R.NAMESPACES, None))
    for r in rows:
        ns = orjson.loads(r.value)
        if not ns.get("metadata", {}).get("deletionTimestamp"):
            continue
        name = ns["metadata"]["name"]
        remaining = 0
        for rt in R.STORED:
            if not rt.namespaced:
                continue
            items, _ = await asyncio.to_thread(state.storage.list, prefix_for(rt, name))
            for it in items:
                obj = with_revision(it.value, it.rev)
                md = obj["metadata"]
                remaining += 1
                if md.get("deletionTimestamp"):
                    continue  # already terminating (a kubelet or finalizer will finish it)
                try:
                    await _write(state, state.registry.delete_txn(rt, name, md["name"], {}))
                except errors.StatusError:
                    pass
        if remaining == 0:
            def op(tx: Tx, key=r.key):
                row = tx.get(key)
                if row is not None:
                    tx.delete(key)

            await _write(state, op)
