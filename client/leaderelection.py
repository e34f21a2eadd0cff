"""Leader election through a coordination.k8s.io/v1 Lease, as client-go's leaderelection.

Several replicas of a component (scheduler, controller manager) may run for
availability, but only one may act at a time. They agree through one Lease
object: its ``spec.holderIdentity`` is the leader, which proves it is alive
by rewriting ``spec.renewTime`` every ``retry_period``. Every write is a
compare-and-swap on the Lease's resourceVersion, so two candidates racing
for a free Lease cannot both win: the API server rejects the second with 409.

Timing (client-go's defaults, which the scheduler uses):

* ``lease_duration`` 15 s - how long a Lease stays valid after its last
  renewal; a standby takes over once it has expired;
* ``renew_deadline`` 10 s - the leader gives up leadership when it has not
  managed to renew for this long (API server down, network cut, process
  stalled). ``is_leader()`` turns False at that moment by itself, so a
  leader that cannot renew stops acting even if its renew thread is stuck;
* ``retry_period`` 2 s - how often the leader renews and standbys check.

Because ``renew_deadline < lease_duration``, an old leader has stopped
acting before anyone else may take the Lease.

When has a Lease expired? client-go does not trust the holder's clock: it
starts the ``lease_duration`` countdown when *it* first sees a new
``renewTime``, which can be up to one ``retry_period`` after the renewal.
We do the same but tighter: the renewal happened after our previous poll and
before this one, so we take the holder's ``renewTime`` clamped into that
window of our own clock. With agreeing clocks a standby takes over
``lease_duration`` after the last renewal (so within 15 s of a leader's
death, which came after its last renewal); with a skewed holder clock the
clamp bounds the error to one poll interval, still well after the old leader
stopped at ``renew_deadline``. A standby also sleeps exactly until the
expiry it computed rather than a full ``retry_period`` past it. On its very
first look at a Lease a candidate has no window, so it counts from "now".

A leader that stops cleanly releases the Lease (empty holder, 1 s duration)
so a standby takes over at its next poll instead of waiting out the lease.

``LeaseLock`` is the seam: ``ApiLeaseLock`` reads and writes the Lease
through the shared client, ``MemoryLeaseLock`` is an in-process fake with the
same compare-and-swap semantics, for tests.
"""
from __future__ import annotations

import copy
import datetime as _dt
import logging
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from api import resources as R
from api.meta import parse_time
from client.errors import AlreadyExists, ApiError, Conflict, NotFound

log = logging.getLogger(__name__)

LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0


def default_identity() -> str:
    """``hostname_<random>``: unique per process, readable in ``kubectl get lease``."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:12]}"


def format_micro_time(t: float) -> str:
    """A metav1.MicroTime: RFC 3339 with microseconds, UTC."""
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(s: str | None) -> float | None:
    """A metav1.MicroTime (or Time) as a Unix time; None when absent or malformed."""
    t = parse_time(s)
    return None if t is None else t.timestamp()


# ----------------------------------------------------------------- the seam
class LeaseLock(Protocol):
    """Get/create/update one Lease; updates are compare-and-swap on ``metadata.resourceVersion``."""

    def get(self) -> dict: ...                  # raises NotFound

    def create(self, spec: dict) -> dict: ...   # raises AlreadyExists

    def update(self, lease: dict, spec: dict) -> dict: ...  # raises Conflict

    def describe(self) -> str: ...


class ApiLeaseLock:
    def __init__(self, client: Any, namespace: str, name: str):
        self.client = client
        self.namespace = namespace
        self.name = name

    def get(self) -> dict:
        return self.client.get(R.LEASES, self.name, self.namespace)

    def create(self, spec: dict) -> dict:
        obj = {"apiVersion": R.LEASES.api_version, "kind": R.LEASES.kind,
               "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
        return self.client.create(R.LEASES, obj, self.namespace)

    def update(self, lease: dict, spec: dict) -> dict:
        obj = {"apiVersion": R.LEASES.api_version, "kind": R.LEASES.kind,
               "metadata": dict(lease.get("metadata") or {}), "spec": spec}
        return self.client.update(R.LEASES, obj, self.namespace)

    def describe(self) -> str:
        return f"{self.namespace}/{self.name}"


class MemoryLeaseLock:
    """An in-memory Lease with the API server's compare-and-swap rules (shareable between electors)."""

    def __init__(self, namespace: str = "kube-system", name: str = "test"):
        self.namespace = namespace
        self.name = name
        self._lock = threading.Lock()
        self._lease: dict | None = None
        self._rv = 0
        self.fail: Exception | None = None  # raise this from every call while set

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def get(self) -> dict:
        with self._lock:
            self._check()
            if self._lease is None:
                raise NotFound(f'leases "{self.name}" not found')
            return copy.deepcopy(self._lease)

    def create(self, spec: dict) -> dict:
        with self._lock:
            self._check()
            if self._lease is not None:
                raise AlreadyExists(f'leases "{self.name}" already exists')
            self._rv += 1
            self._lease = {"metadata": {"name": self.name, "namespace": self.namespace,
                                        "resourceVersion": str(self._rv)}, "spec": copy.deepcopy(spec)}
            return copy.deepcopy(self._lease)

    def update(self, lease: dict, spec: dict) -> dict:
        with self._lock:
            self._check()
            if self._lease is None:
                raise NotFound(f'leases "{self.name}" not found')
            if (lease.get("metadata") or {}).get("resourceVersion") != self._lease["metadata"]["resourceVersion"]:
                raise Conflict("the object has been modified; please apply your changes to the latest version")
            self._rv += 1
            self._lease = {"metadata": dict(self._lease["metadata"], resourceVersion=str(self._rv)),
                           "spec": copy.deepcopy(spec)}
            return copy.deepcopy(self._lease)

    def describe(self) -> str:
        return f"memory:{self.namespace}/{self.name}"

    def holder(self) -> str:
        with self._lock:
            return ((self._lease or {}).get("spec") or {}).get("holderIdentity") or ""


# ----------------------------------------------------------------- the elector
@dataclass
class LeaderElectionConfig:
    lock: LeaseLock
    identity: str = field(default_factory=default_identity)
    lease_duration: float = LEASE_DURATION
    renew_deadline: float = RENEW_DEADLINE
    retry_period: float = RETRY_PERIOD
    release_on_cancel: bool = True
    on_started_leading: Callable[[threading.Event], None] | None = None
    on_stopped_leading: Callable[[], None] | None = None
    on_new_leader: Callable[[str], None] | None = None
    wall_clock: Callable[[], float] = time.time
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")


class LeaderElector:
    """Runs the election; ``run(stop)`` blocks for one leadership term (or until ``stop``)."""

    def __init__(self, config: LeaderElectionConfig):
        self.config = config
        self.identity = config.identity
        self._lease: dict | None = None          # last Lease object seen or written
        self._observed: tuple | None = None      # (holder, renewTime, transitions) last seen
        self._observed_expiry = 0.0              # monotonic time the observed holder's lease runs out
        self._last_poll_wall: float | None = None
        self._renewed_at: float | None = None    # monotonic time of our last successful acquire/renew
        self._leader = ""
        self._lock = threading.Lock()

    # ------------------------------------------------------------ queries
    def is_leader(self) -> bool:
        """True while we hold the Lease and renewed it less than ``renew_deadline`` ago.

        False at once when a read of the Lease shows another holder, even
        before our own renew deadline runs out.
        """
        with self._lock:
            return (self._renewed_at is not None and self._leader == self.identity
                    and self.config.clock() - self._renewed_at < self.config.renew_deadline)

    @property
    def leader(self) -> str:
        """The holder last observed ("" if none)."""
        return self._leader

    # --------------------------------------------------------------- loop
    def run(self, stop: threading.Event) -> bool:
        """Acquire, lead until the Lease is lost or ``stop`` is set; returns whether we ever led."""
        if not self._acquire(stop):
            return False
        term_over = threading.Event()
        worker = None
        if self.config.on_started_leading is not None:
            worker = threading.Thread(target=self.config.on_started_leading, args=(term_over,),
                                      name="leader-term", daemon=True)
            worker.start()
        try:
            self._renew_loop(stop)
        finally:
            with self._lock:
                self._renewed_at = None
            term_over.set()
            if worker is not None:
                worker.join()
            if self.config.on_stopped_leading is not None:
                try:
                    self.config.on_stopped_leading()
                except Exception:
                    log.exception("on_stopped_leading failed")
            if stop.is_set() and self.config.release_on_cancel:
                self.release()
        return True

    def _acquire(self, stop: threading.Event) -> bool:
        desc = self.config.lock.describe()
        log.info("attempting to acquire leader lease %s as %s", desc, self.identity)
        while not stop.is_set():
            if self.try_acquire_or_renew():
                log.info("successfully acquired lease %s", desc)
                return True
            stop.wait(self._next_attempt_delay())
        return False

    def _next_attempt_delay(self) -> float:
        """A jittered retry period, but wake right when the observed Lease expires."""
        delay = self.config.retry_period * (1 + 0.2 * random.random())
        until_expiry = self._observed_expiry - self.config.clock()
        if 0 <= until_expiry < delay:
            delay = until_expiry + 0.01
        return max(delay, 0.01)

    def _renew_loop(self, stop: threading.Event) -> None:
        cfg = self.config
        while not stop.wait(cfg.retry_period):
            deadline = (self._renewed_at or cfg.clock()) + cfg.renew_deadline
            while True:
                if self.try_acquire_or_renew():
                    break
                if cfg.clock() >= deadline or stop.is_set():
                    log.warning("failed to renew lease %s within %.1fs: leadership lost",
                                cfg.lock.describe(), cfg.renew_deadline)
                    return
                if stop.wait(min(cfg.retry_period / 4, max(0.0, deadline - cfg.clock()))):
                    return
            if not self.is_leader():
                return

    # ------------------------------------------------------------ one step
    def try_acquire_or_renew(self) -> bool:
        cfg = self.config
        now_wall = cfg.wall_clock()
        now = cfg.clock()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(cfg.lease_duration),
            "acquireTime": format_micro_time(now_wall),
            "renewTime": format_micro_time(now_wall),
            "leaseTransitions": 0,
        }
        try:
            lease = cfg.lock.get()
        except NotFound:
            try:
                self._lease = cfg.lock.create(spec)
            except ApiError as e:
                log.debug("creating lease failed: %s", e)
                return False
            self._became(spec, now)
            return True
        except ApiError as e:
            log.debug("reading lease failed: %s", e)
            return False
        old = lease.get("spec") or {}
        holder = old.get("holderIdentity") or ""
        self._observe(old, now_wall, now)
        if holder and holder != self.identity and now < self._observed_expiry:
            return False  # someone else holds a valid lease
        if holder == self.identity:
            spec["acquireTime"] = old.get("acquireTime") or spec["acquireTime"]
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0)
        else:
            spec["leaseTransitions"] = int(old.get("leaseTransitions") or 0) + 1
        try:
            self._lease = cfg.lock.update(lease, spec)
        except ApiError as e:
            log.debug("updating lease failed: %s", e)
            return False
        self._became(spec, now)
        return True

    def _observe(self, spec: dict, now_wall: float, now: float) -> None:
        record = (spec.get("holderIdentity") or "", spec.get("renewTime"), spec.get("leaseTransitions"))
        prev_poll = self._last_poll_wall
        self._last_poll_wall = now_wall
        if record == self._observed:
            return
        self._observed = record
        holder = record[0]
        if holder != self._leader:
            self._leader = holder
            if holder and self.config.on_new_leader is not None:
                try:
                    self.config.on_new_leader(holder)
                except Exception:
                    log.exception("on_new_leader failed")
        # When was it renewed? After our previous poll, not after now (module docstring).
        renewed = parse_micro_time(spec.get("renewTime"))
        if prev_poll is None or renewed is None:
            renewed = now_wall
        else:
            renewed = min(max(renewed, prev_poll), now_wall)
        duration = float(spec.get("leaseDurationSeconds") or self.config.lease_duration)
        self._observed_expiry = now + (renewed + duration - now_wall)

    def _became(self, spec: dict, now: float) -> None:
        with self._lock:
            self._renewed_at = now
        self._observed = (spec["holderIdentity"], spec["renewTime"], spec["leaseTransitions"])
        self._observed_expiry = now + self.config.lease_duration
        self._last_poll_wall = self.config.wall_clock()
        if self._leader != self.identity:
            self._leader = self.identity
            if self.config.on_new_leader is not None:
                try:
                    self.config.on_new_leader(self.identity)
                except Exception:
                    log.exception("on_new_leader failed")

    def release(self) -> bool:
        """Give the Lease up (if still ours) so a standby need not wait for it to expire."""
        lease = self._lease
        if lease is None:
            return False
        spec = lease.get("spec") or {}
        if spec.get("holderIdentity") != self.identity:
            return False
        now_wall = self.config.wall_clock()
        new = {"holderIdentity": "", "leaseDurationSeconds": 1,
               "acquireTime": format_micro_time(now_wall), "renewTime": format_micro_time(now_wall),
               "leaseTransitions": int(spec.get("leaseTransitions") or 0)}
        try:
            self._lease = self.config.lock.update(lease, new)
        except ApiError as e:
            log.info("releasing lease failed: %s", e)
            return False
        log.info("released lease %s", self.config.lock.describe())
        return True


def run_forever(elector: LeaderElector, stop: threading.Event) -> None:
    """Stand for election again after every lost term, until ``stop`` is set."""
    while not stop.is_set():
        elector.run(stop)


__all__ = [
    "LeaderElector", "LeaderElectionConfig", "LeaseLock", "ApiLeaseLock", "MemoryLeaseLock",
    "default_identity", "run_forever", "LEASE_DURATION", "RENEW_DEADLINE", "RETRY_PERIOD",
]
