"""The worker half every controller here shares: threads that pop a key, sync it, and requeue failures.

Each controller (endpoints, node IPAM, node taints) is a ``sync(key)`` over
its informer caches; what runs it is the same everywhere, as in client-go's
controllers: ``workers`` threads take keys from the shared work queue (which
never hands one key to two workers at once), a sync that succeeds forgets the
key's back-off, one that raises is logged and re-added rate-limited, and the
key is marked done either way. Keeping it in one place keeps the retry logic
out of the controllers' business logic (DESIGN.md, style rule 2).

A subclass sets ``queue``, ``workers`` and ``_threads`` in its ``__init__``
and names itself with ``worker_name`` (thread names) and ``what`` (log
lines); ``quiet(error, requeues)`` says which failures are expected enough to
log at INFO (a 409 from a racing writer, an exhausted range while it waits).
"""
from __future__ import annotations

import logging
import threading

from client.errors import Conflict


class QueueWorkers:
    worker_name = "controller"
    what = "sync of"
    log = logging.getLogger("controllers")

    def quiet(self, error: Exception, requeues: int) -> bool:
        return isinstance(error, Conflict)

    def sync(self, key: str) -> None:  # pragma: no cover - every controller defines it
        raise NotImplementedError

    def process_one(self, timeout: float | None = None) -> bool:
        """Take one key from the queue and sync it; False when the queue is shut down or empty."""
        key = self.queue.get(timeout)
        if key is None:
            return False
        try:
            self.sync(key)
            self.queue.forget(key)
        except Exception as e:  # noqa: BLE001 - retried with backoff, never fatal
            n = self.queue.num_requeues(key)
            level = logging.INFO if self.quiet(e, n) else logging.WARNING
            self.log.log(level, "%s %s failed (retry %d): %s", self.what, key, n + 1, e)
            self.queue.add_rate_limited(key)
        finally:
            self.queue.done(key)
        return True

    def run(self, stop: threading.Event) -> None:
        """Start the workers and block until ``stop`` is set, then shut the queue down."""
        self.start()
        stop.wait()
        self.stop()

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"{self.worker_name}-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def _worker(self) -> None:
        while self.process_one():
            pass

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.shutdown()
        for t in self._threads:
            t.join(timeout)
        self._threads = []
