"""pocketkube-bridge: the CNI plugin that plugs a pod into its node's bridge.

What ADD does, as a series of small idempotent steps (docs/design.md style 7),
each undone if a later one fails:

1. lease an address from the built-in host-local style IPAM (``ipam``);
2. ensure the bridge (default ``cni0``) exists, is up and carries the gateway
   (the subnet's first address unless configured); set ``net.ipv4.ip_forward``;
3. make a veth pair: the host end ``veth`` + first 8 hex digits of
   sha256(container id) - deterministic, so DEL finds it from the id alone -
   enslaved to the bridge with hairpin on (a pod reaching itself through a
   service IP needs its packet sent back out of the port it came in on), up;
   the other end created directly inside the pod namespace as ``CNI_IFNAME``;
4. in the pod: the address, the link and ``lo`` up, a default route via the
   gateway (or the ipam section's ``routes``).

ADD for a container that already has a lease and a working veth returns the
same result without touching anything, so a retried ADD never leaks an
address. DEL releases the container's lease(s) and deletes the host veth (its
peer goes with it); a namespace that no longer exists is not an error, and DEL
can run any number of times. CHECK verifies the veth, its bridge, the pod
interface and its address against the lease. VERSION lists the spec versions
spoken.

The same ``main(env, stdin)`` serves both ways of running it: the kubelet
calls it in-process (``invoke.CNI`` with ``in_process=True``) and
``python -m kubelet.cni.plugin`` is the CNI executable (``install_plugin``
writes a ``pocketkube-bridge`` shim for ``CNI_PATH``). The network config:

    {"type": "pocketkube-bridge", "bridge": "cni0", "isGateway": true, "hairpinMode": true, "mtu": 1500,
     "ipam": {"type": "host-local", "subnet": "10.244.1.0/24", "gateway": "10.244.1.1",
              "dataDir": "/var/lib/cni", "routes": [{"dst": "0.0.0.0/0"}]}}

Only the built-in IPAM is supported (``ipam.type`` absent or ``host-local``;
its lease files have host-local's format).
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any, Callable, Mapping

from kubelet.cni.ipam import HostLocalIPAM, Lease, RangeConfig
from nodeutil.netlink import Netlink, NetnsNotFound, RealNetlink
from kubelet.cni.types import (ERR_DECODE, ERR_INCOMPATIBLE_VERSION, ERR_INVALID_CONFIG, ERR_INVALID_ENV, ERR_IO,
                               ERR_UNKNOWN_CONTAINER, SPEC_VERSION, SUPPORTED_VERSIONS, CNIError, CNIResult)

PLUGIN_TYPE = "pocketkube-bridge"
DEFAULT_BRIDGE = "cni0"
ERR_CHECK_FAILED = 100  # plugin-specific range (100+): CHECK found the network not as ADD left it


def host_veth_name(container_id: str, ifname: str = "eth0") -> str:
    """``veth`` + 8 hex digits: the node-side name of a container's interface (15 characters max)."""
    key = container_id if ifname == "eth0" else f"{container_id}/{ifname}"
    return "veth" + hashlib.sha256(key.encode()).hexdigest()[:8]


_ENV_ATTR = {"CNI_CONTAINERID": "container_id", "CNI_NETNS": "netns", "CNI_IFNAME": "ifname"}


class Request:
    """One invocation: the ``CNI_*`` environment and the network config from stdin, validated."""

    def __init__(self, env: Mapping[str, str], stdin: bytes):
        self.command = env.get("CNI_COMMAND", "")
        self.container_id = env.get("CNI_CONTAINERID", "")
        self.netns = env.get("CNI_NETNS", "")
        self.ifname = env.get("CNI_IFNAME", "")
        self.args = env.get("CNI_ARGS", "")
        self.path = env.get("CNI_PATH", "")
        try:
            self.conf: dict[str, Any] = json.loads(stdin or b"{}")
        except ValueError as e:
            raise CNIError(ERR_DECODE, "failed to decode the network config on stdin", str(e)) from None
        if not isinstance(self.conf, dict):
            raise CNIError(ERR_DECODE, "the network config on stdin is not a JSON object")
        self.cni_version = str(self.conf.get("cniVersion") or SPEC_VERSION)

    def require(self, *names: str) -> None:
        for name in names:
            if not getattr(self, _ENV_ATTR[name]):
                raise CNIError(ERR_INVALID_ENV, f"required environment variable {name} is missing")


class Config:
    """The plugin's part of the network config."""

    def __init__(self, conf: dict[str, Any]):
        self.name = conf.get("name")
        if not isinstance(self.name, str) or not self.name:
            raise CNIError(ERR_INVALID_CONFIG, "network config has no 'name'")
        self.bridge = str(conf.get("bridge") or DEFAULT_BRIDGE)
        if len(self.bridge) > 15:
            raise CNIError(ERR_INVALID_CONFIG, f"bridge name {self.bridge!r} is longer than 15 characters")
        self.is_gateway = bool(conf.get("isGateway", True))
        self.hairpin = bool(conf.get("hairpinMode", True))
        mtu = conf.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or not 68 <= mtu <= 65535):
            raise CNIError(ERR_INVALID_CONFIG, f"invalid mtu {mtu!r}")
        self.mtu: int | None = mtu
        ipam = conf.get("ipam")
        if not isinstance(ipam, dict):
            raise CNIError(ERR_INVALID_CONFIG, "network config has no 'ipam' section")
        if ipam.get("type") not in (None, "", "host-local"):
            raise CNIError(ERR_INVALID_CONFIG, f"ipam type {ipam.get('type')!r} is not supported by {PLUGIN_TYPE}",
                           "only the built-in host-local style IPAM (type 'host-local' or no type)")
        self.range = RangeConfig.from_ipam(ipam)
        self.ipam = HostLocalIPAM(self.name, self.range)

    def pod_routes(self) -> list[tuple[str, str | None]]:
        gw = str(self.range.gateway)
        if self.range.routes:
            return [(r["dst"], r.get("gw") or gw) for r in self.range.routes]
        return [("0.0.0.0/0", gw)] if self.is_gateway else []

    def gateway_cidr(self) -> str:
        return f"{self.range.gateway}/{self.range.subnet.prefixlen}"


class BridgePlugin:
    """The four commands over a ``Netlink`` seam."""

    def __init__(self, netlink: Netlink | None = None):
        self.nl: Netlink = netlink or RealNetlink()

    # ---------------------------------------------------------------- ADD
    def add(self, req: Request) -> dict[str, Any]:
        req.require("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME")
        cfg = Config(req.conf)
        host = host_veth_name(req.container_id, req.ifname)
        undo: list[Callable[[], None]] = []
        try:
            lease, created = cfg.ipam.allocate(req.container_id, req.ifname)
            if created:
                undo.append(lambda: cfg.ipam.release(req.container_id, req.ifname))
            self.nl.ensure_bridge(cfg.bridge, cfg.gateway_cidr() if cfg.is_gateway else None, cfg.mtu)
            self.nl.enable_ip_forward()
            link = self.nl.link(host)
            existing = self._existing(req, cfg, link, lease) if link is not None else None
            if existing is not None:
                return self._result(req, cfg, lease, *existing)
            if link is not None:
                self.nl.delete_link(host)  # left by an earlier ADD that did not finish
            undo.append(lambda: self.nl.delete_link(host))  # before: add_veth may fail half-way
            host_link, pod_link = self.nl.add_veth(host, req.netns, req.ifname, cfg.mtu)
            self.nl.attach(host, cfg.bridge, cfg.hairpin)
            self.nl.configure_pod(req.netns, req.ifname, lease.address, cfg.pod_routes())
            return self._result(req, cfg, lease, host_link.mac, pod_link.mac)
        except BaseException as e:
            for step in reversed(undo):
                try:
                    step()
                except Exception:  # noqa: BLE001 - best effort; the original error matters
                    pass
            raise _translate(e, req) from None

    def _existing(self, req: Request, cfg: Config, link, lease: Lease) -> tuple[str, str] | None:
        """(host mac, pod mac) when a previous ADD of this container (host veth ``link``) is complete and intact."""
        if link.master != cfg.bridge:
            return None
        try:
            pod = self.nl.pod_link(req.netns, req.ifname)
        except NetnsNotFound:
            return None
        if pod is None or lease.address not in pod.addresses or not pod.up:
            return None
        return link.mac, pod.mac

    def _result(self, req: Request, cfg: Config, lease: Lease, host_mac: str, pod_mac: str) -> dict[str, Any]:
        bridge = self.nl.ensure_bridge(cfg.bridge, cfg.gateway_cidr() if cfg.is_gateway else None, cfg.mtu)
        interfaces = [{"name": cfg.bridge, "mac": bridge.mac if bridge else ""},
                      {"name": host_veth_name(req.container_id, req.ifname), "mac": host_mac},
                      {"name": req.ifname, "mac": pod_mac, "sandbox": req.netns}]
        ip = {"address": lease.address, "interface": 2}
        if cfg.is_gateway:
            ip["gateway"] = str(lease.gateway)
        routes = [{"dst": dst, **({"gw": gw} if gw else {})} for dst, gw in cfg.pod_routes()]
        return CNIResult(req.cni_version, interfaces, [ip], routes, {}).to_dict()

    # ---------------------------------------------------------------- DEL
    def delete(self, req: Request) -> None:
        req.require("CNI_CONTAINERID", "CNI_IFNAME")
        cfg = Config(req.conf)
        try:
            cfg.ipam.release(req.container_id, req.ifname)
            self.nl.delete_link(host_veth_name(req.container_id, req.ifname))
        except BaseException as e:
            raise _translate(e, req) from None

    # ---------------------------------------------------------------- CHECK
    def check(self, req: Request) -> None:
        req.require("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME")
        cfg = Config(req.conf)
        if not isinstance(req.conf.get("prevResult"), dict):
            raise CNIError(ERR_INVALID_CONFIG, "CHECK needs prevResult in the network config")
        prev = CNIResult.from_dict(req.conf["prevResult"])

        def fail(msg: str) -> CNIError:
            return CNIError(ERR_CHECK_FAILED, msg, f"container {req.container_id}")

        lease = cfg.ipam.lookup(req.container_id, req.ifname)
        if lease is None:
            raise fail("no IP lease")
        if lease.address not in [ip["address"] for ip in prev.ips]:
            raise fail(f"leased {lease.address} is not in prevResult")
        host = host_veth_name(req.container_id, req.ifname)
        link = self.nl.link(host)
        if link is None:
            raise fail(f"host veth {host} is missing")
        if link.master != cfg.bridge:
            raise fail(f"host veth {host} is not on bridge {cfg.bridge}")
        if cfg.hairpin and not link.hairpin:
            raise fail(f"host veth {host} has hairpin mode off")
        try:
            pod = self.nl.pod_link(req.netns, req.ifname)
        except NetnsNotFound:
            raise CNIError(ERR_UNKNOWN_CONTAINER, f"network namespace {req.netns} does not exist") from None
        if pod is None:
            raise fail(f"{req.ifname} is missing in {req.netns}")
        if lease.address not in pod.addresses:
            raise fail(f"{req.ifname} in {req.netns} lacks {lease.address}")

    # ---------------------------------------------------------------- VERSION
    @staticmethod
    def version(req: Request) -> dict[str, Any]:
        return {"cniVersion": req.cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)}


def _translate(e: BaseException, req: Request) -> BaseException:
    """Kernel and OS failures into CNI errors; anything else (and CNIError) unchanged."""
    if isinstance(e, CNIError) or not isinstance(e, Exception):
        return e
    if isinstance(e, NetnsNotFound):
        return CNIError(ERR_UNKNOWN_CONTAINER, f"network namespace {req.netns} does not exist")
    return CNIError(ERR_IO, f"{PLUGIN_TYPE} {req.command} failed", f"{type(e).__name__}: {e}")


_NETLINK: RealNetlink | None = None


def _shared_netlink() -> RealNetlink:
    """One RealNetlink per process, so in-process calls share its per-thread sockets and bridge cache."""
    global _NETLINK
    if _NETLINK is None:
        _NETLINK = RealNetlink()
    return _NETLINK


def main(env: Mapping[str, str], stdin: bytes, *, netlink: Netlink | None = None) -> tuple[int, bytes]:
    """Run one CNI command; returns (exit code, stdout bytes) exactly as the executable would."""
    version = SPEC_VERSION
    try:
        req = Request(env, stdin)
        version = req.cni_version
        if req.command == "VERSION":
            return 0, json.dumps(BridgePlugin.version(req)).encode()
        if req.cni_version not in SUPPORTED_VERSIONS:
            raise CNIError(ERR_INCOMPATIBLE_VERSION, f"incompatible CNI version {req.cni_version}",
                           f"{PLUGIN_TYPE} supports {', '.join(SUPPORTED_VERSIONS)}")
        plugin = BridgePlugin(netlink or _shared_netlink())
        if req.command == "ADD":
            return 0, json.dumps(plugin.add(req)).encode()
        if req.command == "DEL":
            plugin.delete(req)
            return 0, b""
        if req.command == "CHECK":
            plugin.check(req)
            return 0, b""
        raise CNIError(ERR_INVALID_ENV, f"unknown CNI_COMMAND {req.command!r}", "expected ADD, DEL, CHECK or VERSION")
    except CNIError as e:
        e.cni_version = version
        return 1, e.to_json().encode()
    except Exception as e:  # noqa: BLE001 - a plugin answers with error JSON, never a traceback
        return 1, CNIError(ERR_IO, f"{PLUGIN_TYPE} internal error", f"{type(e).__name__}: {e}",
                           version).to_json().encode()


def run() -> int:
    """The executable: ``CNI_*`` from the environment, config from stdin, answer on stdout."""
    code, out = main(os.environ, sys.stdin.buffer.read())
    sys.stdout.buffer.write(out)
    sys.stdout.buffer.flush()
    return code


if __name__ == "__main__":
    sys.exit(run())
