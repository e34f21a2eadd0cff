"""A cluster CIDR cut into equal blocks, handed out one per node: Kubernetes' ``cidrset``, in Python.

The node IPAM controller (``controllers.nodeipam``) gives every Node one
block of the cluster pod range (``--cluster-cidr 10.244.0.0/16`` cut into
``--node-cidr-mask-size 24`` blocks: 256 of them). This module is the
allocator alone, pure and in memory, as upstream's
``pkg/controller/nodeipam/ipam/cidrset/cidr_set.go``; the controller feeds it
what the Nodes already hold at start (``occupy``), so nothing is persisted
here: the Nodes' ``spec.podCIDR`` fields are the record.

Semantics kept from upstream, because they decide which block a user sees:

* ``allocate_next`` hands out the first free block at or after a cursor
  (``nextCandidate``) and moves the cursor just past it, wrapping at the
  end. The cursor starts at 0, so a fresh allocator (or a restarted
  controller) fills from the start of the range; a released block is reused
  only once the cursor comes round again, so a block freed a moment ago is
  not given at once to the next node (its old routes may still be about).
* ``occupy`` and ``release`` never move the cursor.
* The block size may be at most 16 bits longer than the cluster prefix
  (upstream's ``clusterSubnetMaxDiff``: at most 65,536 blocks).
* Exhaustion is a typed error (``CIDRsExhausted``) with upstream's message.

Where this is stricter than upstream: ``occupy`` takes exactly one block of
the configured size inside the range; anything else (outside the range, a
different size, in the reserved service range) raises ``CIDROutOfRange`` /
``CIDRWrongSize`` / ``CIDRReserved`` with a sentence saying why, so the
controller can tell the user instead of silently marking a wider or narrower
range. ``reserve`` is the one way to take an arbitrary network (the service
range where it overlaps the cluster range, upstream's ``filterOutServiceRange``):
every block it touches is never handed out, and cannot be released.

The used blocks are one Python int used as a bitmap: finding the next free
block is a few big-int operations (``~used >> cursor``, lowest set bit), not
a scan of a list, so 1,000 allocations in a /12 cut into /24s take a few
milliseconds. A lock makes every method safe from several worker threads.
"""
from __future__ import annotations

import ipaddress
import threading
from typing import Union

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

# Upstream's clusterSubnetMaxDiff: a block is at most 16 bits longer than the cluster prefix.
MAX_MASK_DIFF = 16


class CIDRSetError(ValueError):
    """A request the allocator refuses; the message says why."""


class CIDRsExhausted(CIDRSetError):
    """Every block is in use (upstream's ErrCIDRRangeNoCIDRsRemaining)."""


class CIDROutOfRange(CIDRSetError):
    """The CIDR is not inside the cluster range."""


class CIDRWrongSize(CIDRSetError):
    """The CIDR is inside the range but is not one block of the configured size."""


class CIDRReserved(CIDRSetError):
    """The block lies in a reserved range (the service range): never a node's."""


def _network(cidr: str | Network) -> Network:
    if isinstance(cidr, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return cidr
    try:
        return ipaddress.ip_network(cidr, strict=True)
    except ValueError as e:
        raise CIDRSetError(f"{cidr!r} is not a CIDR: {e}") from None


class CIDRSet:
    """``cluster_cidr`` cut into ``/mask_size`` blocks; see the module docstring."""

    def __init__(self, cluster_cidr: str | Network, mask_size: int):
        try:
            net = ipaddress.ip_network(cluster_cidr, strict=True) if isinstance(cluster_cidr, str) else cluster_cidr
        except ValueError as e:
            raise CIDRSetError(f"cluster CIDR {cluster_cidr!r}: {e}") from None
        if not isinstance(mask_size, int) or isinstance(mask_size, bool):
            raise CIDRSetError(f"node CIDR mask size must be an integer, not {mask_size!r}")
        if mask_size < net.prefixlen:
            raise CIDRSetError(f"node CIDR mask size /{mask_size} is shorter than the cluster CIDR {net}'s "
                               f"/{net.prefixlen}: a node's block cannot be bigger than the cluster range")
        if mask_size > net.max_prefixlen:
            raise CIDRSetError(f"node CIDR mask size /{mask_size} is longer than an IPv{net.version} address")
        if mask_size - net.prefixlen > MAX_MASK_DIFF:
            raise CIDRSetError(f"node CIDR mask size /{mask_size} cuts the cluster CIDR {net} into more than "
                               f"2^{MAX_MASK_DIFF} blocks (at most {MAX_MASK_DIFF} bits longer than /{net.prefixlen})")
        self.cluster = net
        self.mask_size = mask_size
        self.max_cidrs = 1 << (mask_size - net.prefixlen)
        self._shift = net.max_prefixlen - mask_size
        self._base = int(net.network_address)
        self._full = (1 << self.max_cidrs) - 1
        self._used = 0        # bit i set: block i is taken (allocated, occupied or reserved)
        self._reserved = 0    # bit i set: block i is reserved (also set in _used)
        self._next = 0        # upstream's nextCandidate
        self._allocated = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<CIDRSet {self.cluster} /{self.mask_size} used={self.allocated}/{self.max_cidrs}>"

    # ----------------------------------------------------------- helpers
    def _block(self, index: int) -> Network:
        return ipaddress.ip_network((self._base + (index << self._shift), self.mask_size))

    def _index_of(self, cidr: str | Network) -> int:
        net = _network(cidr)
        if net.version != self.cluster.version or not net.subnet_of(self.cluster):
            raise CIDROutOfRange(f"{net} is outside the cluster CIDR {self.cluster}")
        if net.prefixlen != self.mask_size:
            raise CIDRWrongSize(f"{net} is a /{net.prefixlen}, not a /{self.mask_size} block of the cluster CIDR "
                                f"{self.cluster} (--node-cidr-mask-size {self.mask_size})")
        return (int(net.network_address) - self._base) >> self._shift

    # ------------------------------------------------------------ queries
    @property
    def allocated(self) -> int:
        """Blocks in use, reserved ones included (upstream's allocatedCIDRs)."""
        return self._allocated

    @property
    def free(self) -> int:
        return self.max_cidrs - self._allocated

    def is_used(self, cidr: str | Network) -> bool:
        i = self._index_of(cidr)
        return bool(self._used >> i & 1)

    def is_reserved(self, cidr: str | Network) -> bool:
        i = self._index_of(cidr)
        return bool(self._reserved >> i & 1)

    # -------------------------------------------------------------- writes
    def allocate_next(self) -> str:
        """The next free block as a string (``"10.244.3.0/24"``); ``CIDRsExhausted`` when none is left."""
        with self._lock:
            if self._allocated >= self.max_cidrs:
                raise CIDRsExhausted("CIDR allocation failed; there are no remaining CIDRs left to allocate "
                                     f"in the accepted range (cluster CIDR {self.cluster}, /{self.mask_size} blocks)")
            free = ~self._used & self._full
            after = free >> self._next
            if after:
                index = self._next + (after & -after).bit_length() - 1
            else:  # wrap: the lowest free block below the cursor
                index = (free & -free).bit_length() - 1
            self._used |= 1 << index
            self._allocated += 1
            self._next = (index + 1) % self.max_cidrs
            return str(self._block(index))

    def occupy(self, cidr: str | Network) -> bool:
        """Mark one existing block as used (a Node already holds it); True if it was free.

        Occupying a block twice is not an error (two Nodes may claim the same
        one; the controller tracks who holds what); a block outside the
        range, of another size, or in the reserved range raises.
        """
        with self._lock:
            i = self._index_of(cidr)
            bit = 1 << i
            if self._reserved & bit:
                raise CIDRReserved(f"{_network(cidr)} lies in a reserved range (the service range "
                                   "overlapping the cluster CIDR) and is never a node's")
            if self._used & bit:
                return False
            self._used |= bit
            self._allocated += 1
            return True

    def release(self, cidr: str | Network) -> bool:
        """Free one block; True if it was in use. Reserved blocks cannot be released."""
        with self._lock:
            i = self._index_of(cidr)
            bit = 1 << i
            if self._reserved & bit:
                raise CIDRReserved(f"{_network(cidr)} is reserved (the service range) and cannot be released")
            if not self._used & bit:
                return False
            self._used &= ~bit
            self._allocated -= 1
            return True

    def reserve(self, cidr: str | Network) -> int:
        """Take every block that overlaps ``cidr`` for good (any size); returns how many blocks it touches.

        A network that does not overlap the cluster range (or is of the
        other IP family) reserves nothing and returns 0.
        """
        net = _network(cidr)
        if net.version != self.cluster.version or not net.overlaps(self.cluster):
            return 0
        first = max(int(net.network_address), self._base)
        last = min(int(net.broadcast_address), int(self.cluster.broadcast_address))
        lo = (first - self._base) >> self._shift
        hi = (last - self._base) >> self._shift
        bits = ((1 << (hi - lo + 1)) - 1) << lo
        with self._lock:
            self._allocated += (bits & ~self._used).bit_count()
            self._used |= bits
            self._reserved |= bits
        return hi - lo + 1


__all__ = ["CIDRSet", "CIDRSetError", "CIDRsExhausted", "CIDROutOfRange", "CIDRWrongSize", "CIDRReserved",
           "MAX_MASK_DIFF"]
