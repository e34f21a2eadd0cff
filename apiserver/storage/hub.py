"""Watch fan-out: one tailer per API server reads the log and feeds every watcher.

Why one tailer: a hundred open watches must not mean a hundred database
queries per write. The tailer reads "rows after the last revision it saw" once,
keeps a ring buffer of recent events (so a watch resuming from a recent
resourceVersion starts from memory), and hands each event to the watchers
whose key prefix it falls under.

It is woken at once by commits made through this process (the storage writer
calls us after each commit) and polls for commits made by other API servers
on the same PostgreSQL database. Because writers are serialized (see log.py),
revisions become visible in order, so "id > last" never skips a row.

A watch that starts from an older revision first replays history (from the
buffer if it reaches back far enough, otherwise from the log table) and only
then switches to live events; it is registered before the replay and drops
duplicates by revision, so nothing is lost at the seam.
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


class _Sub:
    __slots__ = ("prefix", "queue", "closed")

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.queue: asyncio.Queue = asyncio.Queue()
        self.closed = False


class WatchHub:
    def __init__(self, storage: Storage, buffer_size: int = 10000):
        self.storage = storage
        self.buffer: collections.deque[Event] = collections.deque(maxlen=buffer_size)
        self.last_rev = 0
        self._floor = 0  # the buffer holds every event with rev > _floor
        self._subs: set[_Sub] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiters: list[tuple[int, asyncio.Future]] = []

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.last_rev = await asyncio.to_thread(self.storage.current_revision)
        self._floor = self.last_rev
        self.storage.add_commit_listener(self._on_commit)
        self._task = asyncio.create_task(self._tail(), name="watch-tailer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for s in list(self._subs):
            s.closed = True
            s.queue.put_nowait(None)

    def _on_commit(self, rev: int) -> None:  # writer thread
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

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
        while True:
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
            if key.startswith(s.prefix) and not s.closed:
                if s.queue.qsize() > MAX_PENDING:
                    s.closed = True
                    s.queue.put_nowait(None)
                else:
                    s.queue.put_nowait(ev)

    async def watch(self, prefix: str, from_rev: int) -> AsyncIterator[Event]:
        """Yield every event under prefix with revision > from_rev, in order, forever.

        Raises Compacted when from_rev is older than the compaction revision,
        WatcherTooSlow when the consumer fell too far behind.
        """
        sub = _Sub(prefix)
        self._subs.add(sub)
        try:
            live_start = self.last_rev
            last = from_rev
            if from_rev < live_start:
                if from_rev >= self._floor:
                    for ev in list(self.buffer):
                        if from_rev < ev.rev <= live_start and ev.key.startswith(prefix):
                            last = ev.rev
                            yield ev
                else:
                    async for ev in self._replay(prefix, from_rev, live_start):
                        last = ev.rev
                        yield ev
            while True:
                ev = await sub.queue.get()
                if ev is None:
                    raise WatcherTooSlow()
                if ev.rev <= last:
                    continue
                last = ev.rev
                yield ev
        finally:
            sub.closed = True
            self._subs.discard(sub)

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
