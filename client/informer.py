"""Informers: one list + watch per resource, feeding a local Store and event handlers.

This is client-go's reflector + shared informer in one loop (docs/design.md style
3). A component never polls the API server: it lists once, replaces its
Store with the result, then watches from the list's resourceVersion so no
change in between is lost, and every event updates the Store *before* the
handlers run (a handler that reads the Store sees at least that event).

The loop, in the informer's daemon thread::

    relist -> watch from rv -> (stream ends) -> watch from last seen rv -> ...

* A watch that ends cleanly (server ``timeoutSeconds``) or breaks (dropped
  connection, API server restart) is resumed from the last resourceVersion
  seen; BOOKMARK events advance it without touching the Store. The Store is
  kept as it was while the server is away, so readers keep working.
* 410 Gone (an ERROR event with code 410, or an HTTP 410) means the server
  compacted past our resourceVersion: relist, then emit ``on_delete`` for
  objects that vanished, ``on_update`` for changed ones and ``on_add`` for new
  ones, so handlers converge as if they had seen every event.
* Repeated failures back off exponentially with jitter (capped at ~5 s): never
  a hot loop against a server that is down.

Handlers (``add_handler``) run in the informer thread, one event at a time and
in order; they should be quick (enqueue a key, as style 1 says) and must not
mutate the objects they are given. An exception in a handler is logged and
does not stop the informer. A handler added after the initial sync is first
replayed the Store's current content as adds, under the same lock that event
dispatch takes, so it sees every object exactly once and then every event.

``SharedInformers`` (alias ``InformerFactory``) hands out one informer per
(resource, namespace, selectors), so several controllers in one process share
one watch and one cache.
"""
from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from api.resources import ResourceType
from client.cache import IndexFunc, Store, resource_version
from client.errors import ApiError, Gone, error_from_status

log = logging.getLogger(__name__)

AddFunc = Callable[[dict], Any]
UpdateFunc = Callable[[dict, dict], Any]
DeleteFunc = Callable[[dict], Any]


@dataclass(eq=False)
class Handler:
    on_add: AddFunc | None = None
    on_update: UpdateFunc | None = None
    on_delete: DeleteFunc | None = None


class Backoff:
    """Exponential backoff with jitter: ``initial * 2**n`` capped at ``maximum``, times 0.5..1."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0):
        self.initial = initial
        self.maximum = maximum
        self.failures = 0

    def next_delay(self) -> float:
        exp = min(self.failures, 32)
        self.failures += 1
        delay = min(self.maximum, self.initial * (2 ** exp))
        return delay * (0.5 + random.random() / 2)

    def reset(self) -> None:
        self.failures = 0


class Informer:
    """List + watch one resource into ``self.store`` and dispatch events (see module docstring)."""

    def __init__(self, client: Any, rt: ResourceType, namespace: str | None = None, *,
                 label_selector: str | None = None, field_selector: str | None = None,
                 resync_period: float | None = None, indexers: dict[str, IndexFunc] | None = None,
                 page_size: int = 500, watch_timeout: float = 300.0,
                 backoff_initial: float = 0.1, backoff_max: float = 5.0):
        self.client = client
        self.rt = rt
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.store = Store(indexers=indexers)
        self._backoff = Backoff(backoff_initial, backoff_max)
        self._handlers: list[Handler] = []
        self._dispatch_lock = threading.RLock()  # store writes + handler calls, and handler registration
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._watch_lock = threading.Lock()
        self._watch: Any = None
        self._threads: list[threading.Thread] = []
        self._rv = ""
        self._started = False

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"<Informer {self.rt.plural}{where} rv={self._rv!r} synced={self.has_synced()}>"

    # ------------------------------------------------------------ public API
    @property
    def last_resource_version(self) -> str:
        """The resourceVersion the next watch resumes from."""
        return self._rv

    def add_handler(self, on_add: AddFunc | None = None, on_update: UpdateFunc | None = None,
                    on_delete: DeleteFunc | None = None) -> Handler:
        """Register callbacks; returns a handle for ``remove_handler``.

        Objects already in the Store are delivered to ``on_add`` first.
        """
        handler = Handler(on_add, on_update, on_delete)
        with self._dispatch_lock:
            if on_add is not None:
                for obj in self.store.list():
                    self._call(on_add, obj)
            self._handlers.append(handler)
        return handler

    def remove_handler(self, handler: Handler) -> None:
        with self._dispatch_lock:
            self._handlers = [h for h in self._handlers if h is not handler]

    def has_synced(self) -> bool:
        """True once the first list has been stored and dispatched."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def start(self) -> None:
        """Run the list/watch loop in a daemon thread (idempotent)."""
        if self._started:
            return
        self._started = True
        self._stop.clear()
        name = f"informer-{self.rt.plural}"
        self._threads.append(threading.Thread(target=self.run, name=name, daemon=True))
        if self.resync_period:
            self._threads.append(threading.Thread(target=self._resync_loop, name=f"{name}-resync", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop promptly: closes the open watch stream, then joins the threads."""
        self._stop.set()
        self._close_watch()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)
        self._threads = []
        self._started = False

    # ------------------------------------------------------------- the loop
    def run(self) -> None:
        """The list/watch loop; returns when ``stop()`` is called."""
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list:
                    self._list_and_sync()
                    need_list = False
                if self._stop.is_set():
                    break
                if self._watch_once():
                    self._backoff.reset()
                else:
                    self._sleep_backoff("watch ended at once without events")
            except Gone as e:
                log.info("%s: resourceVersion %s expired (%s); relisting", self.rt.plural, self._rv, e.message)
                need_list = True
                # The first 410 relists at once; 410s in a row (no healthy watch
                # in between) back off like any other failure.
                if self._backoff.failures:
                    self._sleep_backoff("410 again")
                else:
                    self._backoff.failures = 1
            except ApiError as e:
                if self._stop.is_set():
                    break
                self._sleep_backoff(f"{type(e).__name__}: {e.message}")
            except Exception:  # never let the informer thread die
                if self._stop.is_set():
                    break
                log.exception("%s informer: unexpected error", self.rt.plural)
                self._sleep_backoff("unexpected error")

    def _sleep_backoff(self, why: str) -> None:
        delay = self._backoff.next_delay()
        log.debug("%s informer: %s; retrying in %.2fs", self.rt.plural, why, delay)
        self._stop.wait(delay)

    def _list_and_sync(self) -> None:
        items, rv = self.client.list_all(
            self.rt, self.namespace, label_selector=self.label_selector,
            field_selector=self.field_selector, page_size=self.page_size,
        )
        with self._dispatch_lock:
            old = dict(self.store.items())
            self.store.replace(items, rv)
            self._rv = rv
            seen: set[str] = set()
            for obj in items:
                key = self.store.key(obj)
                seen.add(key)
                before = old.get(key)
                if before is None:
                    self._dispatch_add(obj)
                elif resource_version(before) != resource_version(obj):
                    self._dispatch_update(before, obj)
            for key, obj in old.items():
                if key not in seen:
                    self._dispatch_delete(obj)
            self._synced.set()

    def _watch_once(self) -> bool:
        """Watch from ``self._rv`` until the stream ends; False if it ended at once and empty."""
        started = time.monotonic()
        events = 0
        timeout = int(self.watch_timeout * (1 + random.random()))  # spread reconnects, as client-go
        watch = self.client.watch(
            self.rt, self.namespace, resource_version=self._rv, label_selector=self.label_selector,
            field_selector=self.field_selector, timeout_seconds=timeout, allow_bookmarks=True,
        )
        with self._watch_lock:
            self._watch = watch
        if self._stop.is_set():
            watch.close()
        try:
            for event_type, obj in watch:
                if self._stop.is_set():
                    break
                events += 1
                self._handle_event(event_type, obj)
        finally:
            with self._watch_lock:
                self._watch = None
            watch.close()
        return events > 0 or time.monotonic() - started >= 1.0

    def _close_watch(self) -> None:
        with self._watch_lock:
            watch = self._watch
        if watch is not None:
            watch.close()

    def _handle_event(self, event_type: str, obj: dict) -> None:
        if event_type == "ERROR":
            raise error_from_status(obj)
        rv = resource_version(obj)
        if event_type == "BOOKMARK":
            if rv:
                self._rv = rv
            return
        with self._dispatch_lock:
            if event_type in ("ADDED", "MODIFIED"):
                self._fill_type_meta(obj)
                old = self.store.get(obj)
                if old is not None and resource_version(old) == rv:
                    pass  # already seen (e.g. replayed after a reconnect)
                else:
                    self.store.add(obj)
                    if old is None:
                        self._dispatch_add(obj)
                    else:
                        self._dispatch_update(old, obj)
            elif event_type == "DELETED":
                self._fill_type_meta(obj)
                if self.store.delete(obj) is not None:
                    self._dispatch_delete(obj)
            else:
                log.warning("%s informer: ignoring unknown watch event type %r", self.rt.plural, event_type)
            if rv:
                self._rv = rv

    def _fill_type_meta(self, obj: dict) -> None:
        if "kind" not in obj:
            obj["kind"] = self.rt.kind
        if "apiVersion" not in obj:
            obj["apiVersion"] = self.rt.api_version

    def _resync_loop(self) -> None:
        """Every ``resync_period``, replay the Store as updates (old is new), as client-go does."""
        while not self._stop.wait(self.resync_period):
            if not self.has_synced():
                continue
            with self._dispatch_lock:
                for obj in self.store.list():
                    self._dispatch_update(obj, obj)

    # -------------------------------------------------------------- dispatch
    def _dispatch_add(self, obj: dict) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _dispatch_update(self, old: dict, new: dict) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _dispatch_delete(self, obj: dict) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    def _call(self, fn: Callable, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%s informer: handler %r failed", self.rt.plural, fn)


class SharedInformers:
    """One informer per (resource, namespace, selectors), shared by a process's controllers."""

    def __init__(self, client: Any, *, resync_period: float | None = None, **informer_options: Any):
        self.client = client
        self.resync_period = resync_period
        self._options = informer_options
        self._lock = threading.Lock()
        self._informers: dict[tuple, Informer] = {}
        self._started = False

    def informer_for(self, rt: ResourceType, namespace: str | None = None, *,
                     label_selector: str | None = None, field_selector: str | None = None,
                     indexers: dict[str, IndexFunc] | None = None) -> Informer:
        """The shared informer for this watch; indexers are merged into its Store."""
        key = (rt, namespace or None, label_selector or None, field_selector or None)
        with self._lock:
            informer = self._informers.get(key)
            if informer is None:
                informer = Informer(self.client, rt, namespace, label_selector=label_selector,
                                    field_selector=field_selector, resync_period=self.resync_period,
                                    indexers=indexers, **self._options)
                self._informers[key] = informer
                if self._started:
                    informer.start()
            elif indexers:
                informer.store.add_indexers(indexers)
            return informer

    get = informer_for

    def informers(self) -> list[Informer]:
        with self._lock:
            return list(self._informers.values())

    def start_all(self) -> None:
        """Start every informer; ones requested later start as they are created."""
        with self._lock:
            self._started = True
            informers = list(self._informers.values())
        for informer in informers:
            informer.start()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True once every informer has synced, False if ``timeout`` passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for informer in self.informers():
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not informer.wait_for_sync(remaining):
                return False
        return True

    def stop_all(self, timeout: float | None = 5.0) -> None:
        with self._lock:
            self._started = False
            informers = list(self._informers.values())
        for informer in informers:
            informer._stop.set()
            informer._close_watch()
        for informer in informers:
            informer.stop(timeout)


InformerFactory = SharedInformers

__all__ = ["Informer", "SharedInformers", "InformerFactory", "Handler", "Backoff"]
