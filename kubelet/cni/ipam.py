"""Address management for pocketkube-bridge: host-local's design, one file per leased IP.

Why files: the kubelet (and with it the in-process plugin) restarts while pods
keep running, and several plugin processes may run at once; a directory of
small files is a store that survives both without a daemon. Each network gets
``<dataDir>/networks/<network name>/`` (dataDir from the ipam config, default
``/var/lib/cni``). In it:

* ``<ip>`` - one per lease, created with ``O_CREAT|O_EXCL`` so two allocators
  can never both win an address; it holds ``<container id>\\r\\n<ifname>``,
  the same content the reference ``host-local`` plugin writes;
* ``last_reserved_ip.0`` - the last address handed out; the next allocation
  starts after it, so a released address is not reused at once (a stale ARP
  entry or a slow peer would otherwise reach the wrong pod);
* the directory itself is ``flock``-ed around every allocation and release,
  which orders threads (each opens its own descriptor) and processes alike.

The lease files are byte-for-byte what host-local writes; only the directory
differs when ``dataDir`` is set (host-local uses ``<dataDir>/<network>`` with
``dataDir`` defaulting to ``/var/lib/cni/networks``, so with the defaults both
use the same ``/var/lib/cni/networks/<network>``).

Nothing is fsync-ed: a lease describes a veth and a namespace that live only
as long as the machine is up, so a crash that loses unwritten pages also
removes everything the lease stood for, while a restarted kubelet or plugin
reads the page cache like any other process (host-local does not fsync
either). An fsync here held the allocation lock for ~4 ms per pod, and every
pod's address allocation waited behind it.

The network, gateway and broadcast addresses are never handed out. Allocation
is idempotent per (container id, ifname): asking again returns the existing
lease rather than leaking a second address. Exhaustion is a ``CNIError`` with
code 11 ("try again later": addresses come back as pods are deleted).
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from kubelet.cni.types import ERR_INVALID_CONFIG, ERR_IO, ERR_TRY_AGAIN, CNIError

DEFAULT_DATA_DIR = "/var/lib/cni"
LAST_RESERVED = "last_reserved_ip.0"
LINE_BREAK = "\r\n"


@dataclass(frozen=True)
class Lease:
    ip: ipaddress.IPv4Address
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address

    @property
    def address(self) -> str:
        """``10.244.1.5/24``"""
        return f"{self.ip}/{self.network.prefixlen}"


@dataclass(frozen=True)
class RangeConfig:
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    range_start: ipaddress.IPv4Address
    range_end: ipaddress.IPv4Address
    data_dir: str
    routes: tuple[dict, ...]

    @classmethod
    def from_ipam(cls, ipam: dict) -> "RangeConfig":
        """Parse an ipam section: host-local's ``subnet``/``rangeStart``/``rangeEnd``/``gateway``,
        or its ``ranges: [[{...}]]`` with one IPv4 range; plus ``dataDir`` and ``routes``."""
        def bad(why: str) -> CNIError:
            return CNIError(ERR_INVALID_CONFIG, "invalid ipam configuration", why)

        if not isinstance(ipam, dict):
            raise bad("'ipam' must be an object")
        rng = ipam
        if "ranges" in ipam:
            try:
                rng = ipam["ranges"][0][0]
            except (TypeError, IndexError, KeyError):
                raise bad("'ranges' must be a list of lists of ranges") from None
            if len(ipam["ranges"]) > 1 or len(ipam["ranges"][0]) > 1:
                raise bad("only one range is supported")
        try:
            subnet = ipaddress.ip_network(rng["subnet"])
        except KeyError:
            raise bad("no 'subnet'") from None
        except ValueError as e:
            raise bad(f"subnet {rng.get('subnet')!r}: {e}") from None
        if subnet.version != 4:
            raise bad(f"subnet {subnet} is not IPv4 (only IPv4 is supported)")
        if subnet.prefixlen > 30:
            raise bad(f"subnet {subnet} is too small (at most /30)")

        def addr(key: str, default: ipaddress.IPv4Address) -> ipaddress.IPv4Address:
            if not rng.get(key):
                return default
            try:
                a = ipaddress.ip_address(rng[key])
            except ValueError as e:
                raise bad(f"{key}: {e}") from None
            if a not in subnet:
                raise bad(f"{key} {a} is outside subnet {subnet}")
            return a

        gateway = addr("gateway", subnet.network_address + 1)
        start = addr("rangeStart", subnet.network_address + 1)
        end = addr("rangeEnd", subnet.broadcast_address - 1)
        if int(start) > int(end):
            raise bad(f"rangeStart {start} is after rangeEnd {end}")
        routes = ipam.get("routes") or []
        if not isinstance(routes, list) or not all(isinstance(r, dict) and r.get("dst") for r in routes):
            raise bad("'routes' must be a list of {\"dst\": CIDR, \"gw\"?: IP}")
        return cls(subnet, gateway, start, end, str(ipam.get("dataDir") or DEFAULT_DATA_DIR), tuple(routes))


# lease owners already read, per lease directory: {name: ((inode, ctime ns), ip, (container id, ifname))}
_OWNERS: dict[str, dict[str, tuple[tuple[int, int], ipaddress.IPv4Address, tuple[str, str]]]] = {}
_OWNERS_LOCK = threading.Lock()


class HostLocalIPAM:
    """Leases of one network in ``<data_dir>/networks/<network>/``; safe across threads and processes."""

    def __init__(self, network: str, config: RangeConfig):
        if not network or "/" in network or network in (".", ".."):
            raise CNIError(ERR_INVALID_CONFIG, "invalid network name for ipam", repr(network))
        self.config = config
        self.dir = os.path.join(config.data_dir, "networks", network)

    @classmethod
    def from_ipam(cls, network: str, ipam: dict) -> "HostLocalIPAM":
        return cls(network, RangeConfig.from_ipam(ipam))

    # ------------------------------------------------------------ locking
    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            os.makedirs(self.dir, mode=0o755, exist_ok=True)
            fd = os.open(self.dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise CNIError(ERR_IO, f"cannot open ipam directory {self.dir}", str(e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock

    # ------------------------------------------------------------ queries
    def _candidates(self) -> list[int]:
        """The addresses that may be handed out, as integers (building ~250 IPv4Address objects for
        every allocation cost about a millisecond of CPU per pod)."""
        c = self.config
        skip = {int(c.subnet.network_address), int(c.subnet.broadcast_address), int(c.gateway)}
        return [i for i in range(int(c.range_start), int(c.range_end) + 1) if i not in skip]

    def _read_leases(self, fresh: bool = False) -> dict[ipaddress.IPv4Address, tuple[str, str]]:
        """Every lease: ``{ip: (container id, ifname)}``.

        The owners are remembered in this process (``_OWNERS``) per file name, inode and change time:
        a lease file is written once, when it is made, and removed on release, so a file with the same
        identity has the owner read before (a released address leased again gets a new change time even
        when the filesystem hands out the same inode at once, as ext4 does). One ``stat`` per lease
        instead of open, read and close, and none of the parsing. ``fresh`` reads every file (release
        does, before it removes anything).
        """
        try:
            with os.scandir(self.dir) as it:
                entries = [e for e in it if e.name[:1].isdigit()]
        except FileNotFoundError:
            return {}
        with _OWNERS_LOCK:
            known = {} if fresh else _OWNERS.get(self.dir, {})
        out: dict[ipaddress.IPv4Address, tuple[str, str]] = {}
        seen: dict[str, tuple[tuple[int, int], ipaddress.IPv4Address, tuple[str, str]]] = {}
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            ident = (st.st_ino, st.st_ctime_ns)
            hit = known.get(e.name)
            if hit is not None and hit[0] == ident:
                seen[e.name] = hit
                out[hit[1]] = hit[2]
                continue
            try:
                ip = ipaddress.IPv4Address(e.name)
            except ValueError:
                continue  # last_reserved_ip.0, lock files, ...
            try:
                with open(e.path, newline="") as f:  # keep the \r\n
                    data = f.read()
            except OSError:
                continue
            cid, _, ifname = data.strip().partition(LINE_BREAK)
            owner = (cid.strip(), ifname.strip())
            seen[e.name] = (ident, ip, owner)
            out[ip] = owner
        with _OWNERS_LOCK:
            _OWNERS[self.dir] = seen
        return out

    def _remember(self, ip: ipaddress.IPv4Address, fd: int, owner: tuple[str, str]) -> None:
        st = os.fstat(fd)
        with _OWNERS_LOCK:
            _OWNERS.setdefault(self.dir, {})[str(ip)] = ((st.st_ino, st.st_ctime_ns), ip, owner)

    def leases(self) -> dict[str, tuple[str, str]]:
        """``{ip: (container id, ifname)}`` for every lease on disk."""
        return {str(ip): owner for ip, owner in sorted(self._read_leases().items())}

    def _owned(self, container_id: str, ifname: str | None,
               leases: dict[ipaddress.IPv4Address, tuple[str, str]] | None = None) -> list[ipaddress.IPv4Address]:
        # An ifname-less file (written by very old host-local) matches on the id alone.
        return sorted(ip for ip, (cid, ifn) in (self._read_leases() if leases is None else leases).items()
                      if cid == container_id and (ifname is None or ifn in (ifname, "")))

    def lookup(self, container_id: str, ifname: str) -> Lease | None:
        owned = self._owned(container_id, ifname)
        return self._lease(owned[0]) if owned else None

    def _lease(self, ip: ipaddress.IPv4Address) -> Lease:
        return Lease(ip, self.config.subnet, self.config.gateway)

    # ------------------------------------------------------------ changes
    def allocate(self, container_id: str, ifname: str) -> tuple[Lease, bool]:
        """The container's lease, made if needed; returns ``(lease, created)``."""
        # The leases are read before the lock: the lock orders the choice of a free address between
        # allocators (and the "last reserved" hint), and everything done under it is time all other pod
        # starts on the node wait. The same container is never added twice at once (the CNI caller
        # serialises per container), so its own lease cannot appear in between.
        leases = self._read_leases()
        owned = self._owned(container_id, ifname, leases)
        if owned:
            return self._lease(owned[0]), False
        candidates = self._candidates()
        with self._locked():
            taken = {int(ip) for ip in leases}     # known leases are skipped; O_EXCL still decides races
            start = 0
            last = self._read_last()
            if last is not None and int(last) in candidates:
                start = candidates.index(int(last)) + 1
            for k in range(len(candidates)):
                i = candidates[(start + k) % len(candidates)]
                if i in taken:
                    continue
                ip = ipaddress.IPv4Address(i)
                path = os.path.join(self.dir, str(ip))
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    continue
                except OSError as e:
                    raise CNIError(ERR_IO, f"cannot write lease {path}", str(e)) from None
                try:
                    os.write(fd, f"{container_id}{LINE_BREAK}{ifname}".encode())
                    self._remember(ip, fd, (container_id, ifname))
                except OSError as e:
                    os.close(fd)
                    os.unlink(path)
                    raise CNIError(ERR_IO, f"cannot write lease {path}", str(e)) from None
                os.close(fd)
                self._write_last(ip)
                return self._lease(ip), True
        c = self.config
        raise CNIError(ERR_TRY_AGAIN, f"no IP addresses available in range {c.range_start}-{c.range_end}",
                       f"all {len(candidates)} addresses of {c.subnet} in {self.dir} are leased")

    def release(self, container_id: str, ifname: str | None = None) -> list[str]:
        """Remove the container's lease(s) (all of its ifnames when ``ifname`` is None); idempotent."""
        if not os.path.isdir(self.dir):
            return []
        released = []
        with self._locked():
            # read afresh, not from the remembered owners: what is removed must be this container's now
            for ip in self._owned(container_id, ifname, self._read_leases(fresh=True)):
                try:
                    os.unlink(os.path.join(self.dir, str(ip)))
                    released.append(str(ip))
                except FileNotFoundError:
                    pass
        return released

    def _read_last(self) -> ipaddress.IPv4Address | None:
        try:
            with open(os.path.join(self.dir, LAST_RESERVED)) as f:
                return ipaddress.IPv4Address(f.read().strip())
        except (OSError, ValueError):
            return None

    def _write_last(self, ip: ipaddress.IPv4Address) -> None:
        # Rewritten in place, not through a new file and a rename: it is only a hint where to start the
        # next search (a torn or empty file reads as "no hint", and the leases themselves decide), and a
        # new inode per pod is measurable on a burst (ext4 without a journal scans for a free inode).
        with open(os.path.join(self.dir, LAST_RESERVED), "w") as f:
            f.write(str(ip))


__all__ = ["HostLocalIPAM", "Lease", "RangeConfig", "DEFAULT_DATA_DIR"]
