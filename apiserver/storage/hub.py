"""Watch fan-out: one tailer per API server reads the log and feeds every watcher.

Why one tailer: a hundred open watches must not mean a hundred database
queries per write. The tailer reads "rows after the last revision it saw" once,
keeps a ring buffer of recent events (so a watch resuming from a recent
resourceVersion starts from memory), and hands each event to the watchers
whose key prefix it falls under.

Commits made through this process are handed over by the storage writer
with the rows they appended (``_deliver``): when those continue exactly
where the tailer stands (the first is ``last_rev + 1`` and none is missing),
they are dispatched from memory, with no query and no thread hop; otherwise
(another API server wrote in between, or PostgreSQL's sequence left a gap)
the tailer is woken to read the log. It also polls for commits made by other
API servers on the same PostgreSQL database. Because writers are serialized
(see log.py), revisions become visible in order, so "id > last" never skips
a row, and both ways skip what was already dispatched.

A watch that starts from an older revision subscribes first, then replays
history up to the revision it subscribed at (from the buffer if it reaches
back far enough, otherwise from the log table), then takes live events; it
drops duplicates by revision, so nothing is lost or repeated at the seam.
"""
from __future__ import annotations

import asyncio
import collections
import logging
from typing import AsyncIterator

from .log import Compacted, Event, Storage

log = logging.getLogger("pocketkube.watch")

# A watcher this far behind is cut off (it reconnects and resumes), so one slow
# client can never make the server buffer without bound.
MAX_PENDING = 20000


class WatcherTooSlow(Exception):
    pass


class Subscription:
    """One watcher's live feed: a deque filled by the tailer, drained in batches.

    The watcher waits on a plain Future that the tailer completes, and then
    takes everything pending at once: with a hundred watchers, one event
    costs a hundred cheap wakeups, not a hundred Tasks.
    """

    __slots__ = ("prefix", "queue", "waiter", "closed", "overflow", "start_rev")

    def __init__(self, prefix: str, start_rev: int):
        self.prefix = prefix
        self.queue: collections.deque[Event] = collections.deque()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.overflow = False
        self.start_rev = start_rev  # live events are those after this revision

    def push(self, ev: Event) -> None:
        if len(self.queue) >= MAX_PENDING:
            self.overflow = True
            self.closed = True
        else:
            self.queue.append(ev)
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """True when events are pending (or the feed closed); False on timeout."""
        if self.queue or self.closed:
            return True
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(self.waiter, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            self.waiter = None

    def drain(self) -> list[Event]:
        out = list(self.queue)
        self.queue.clear()
        return out


class WatchHub:
    def __init__(self, storage: Storage, buffer_size: int = 10000):
        self.storage = storage
        self.buffer: collections.deque[Event] = collections.deque(maxlen=buffer_size)
        self.last_rev = 0
        self._floor = 0  # the buffer holds every event with rev > _floor
        self._subs: set[Subscription] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._stopping = False

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.last_rev = await asyncio.to_thread(self.storage.current_revision)
        self._floor = self.last_rev
        self.storage.add_commit_listener(self._on_commit)
        self._task = asyncio.create_task(self._tail(), name="watch-tailer")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task:
            self._task.cancel()
            # Python 3.11's wait_for can swallow a cancellation that arrives just as its timeout fires
            # (CPython gh-86296): the tailer then goes on, sees _stopping and ends; the wait is bounded.
            await asyncio.wait({self._task}, timeout=5)
        for s in list(self._subs):
            s.close()

    def _on_commit(self, rev: int, events: list[Event]) -> None:  # writer thread
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._deliver, events)

    def _deliver(self, events: list[Event]) -> None:
        """Dispatch a commit's own rows if they continue the log without a gap; else let the tailer read."""
        if not events or events[-1].rev <= self.last_rev:
            return
        fresh = [ev for ev in events if ev.rev > self.last_rev]
        if fresh[0].rev != self.last_rev + 1 or any(b.rev != a.rev + 1 for a, b in zip(fresh, fresh[1:])):
            self._wake.set()
            return
        for ev in fresh:
            self._dispatch(ev)
        self._release_waiters()

    async def wait_for(self, rev: int, timeout: float = 5.0) -> None:
        """Wait until the tailer has dispatched `rev` (so a watch opened now sees later events)."""
        if self.last_rev >= rev:
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((rev, fut))
        self._wake.set()
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass

    async def _tail(self) -> None:
        poll = self.storage.poll_interval
        backoff = 0.1
        while not self._stopping:
            try:
                await asyncio.wait_for(self._wake.wait(), poll)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                while True:
                    events = await asyncio.to_thread(self.storage.events_after, self.last_rev, 2000)
                    if not events:
                        break
                    for ev in events:
                        self._dispatch(ev)
                    if len(events) < 2000:
                        break
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the database may be briefly unreachable
                log.warning("watch tailer: %s", e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            self._release_waiters()

    def _release_waiters(self) -> None:
        if self._waiters:
            keep = []
            for rev, fut in self._waiters:
                if rev <= self.last_rev:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((rev, fut))
            self._waiters = keep

    def _dispatch(self, ev: Event) -> None:
        if ev.rev <= self.last_rev:
            return
        if len(self.buffer) == self.buffer.maxlen:
            self._floor = self.buffer[0].rev
        self.buffer.append(ev)
        self.last_rev = ev.rev
        key = ev.key
        for s in self._subs:
            if not s.closed and key.startswith(s.prefix):
                s.push(ev)

    def subscribe(self, prefix: str) -> Subscription:
        """Start receiving live events under prefix (those after sub.start_rev)."""
        sub = Subscription(prefix, self.last_rev)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub.closed = True
        self._subs.discard(sub)

    async def history(self, prefix: str, from_rev: int, until: int) -> AsyncIterator[Event]:
        """Events under prefix with from_rev < rev <= until, from memory or the log.

        Raises Compacted when from_rev is older than the compaction revision.
        """
        if from_rev >= until:
            return
        if from_rev >= self._floor:
            for ev in list(self.buffer):
                if from_rev < ev.rev <= until and ev.key.startswith(prefix):
                    yield ev
            return
        async for ev in self._replay(prefix, from_rev, until):
            yield ev

    async def _replay(self, prefix: str, from_rev: int, until: int) -> AsyncIterator[Event]:
        comp = await asyncio.to_thread(self.storage.compacted_revision)
        if from_rev < comp:
            raise Compacted(from_rev, comp)
        cursor = from_rev
        while cursor < until:
            events = await asyncio.to_thread(self.storage.events_after, cursor, 1000, prefix)
            if not events:
                break
            for ev in events:
                if ev.rev > until:
                    return
                yield ev
            cursor = events[-1].rev
            if len(events) < 1000:
                break
        comp = await asyncio.to_thread(self.storage.compacted_revision)
        if from_rev < comp:  # compaction raced with the replay: rows may be missing
            raise Compacted(from_rev, comp)
