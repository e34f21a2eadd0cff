"""The kine-style log store itself, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading

import pytest

from apiserver.storage.log import Compacted, KeyExists, KeyNotFound, RevisionConflict, Storage, storage_url_for

from tests.conftest import make_pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = Storage(storage_url_for(str(tmp_path)))
        yield s
        s.close()
        return
    url, drop = make_pg_database()
    s = Storage(url)
    try:
        yield s
    finally:
        s.close()
        drop()


K = "/registry/core/pods/default/"


def test_create_update_delete_and_history(store):
    r1 = store.transact(lambda tx: tx.create(K + "a", b'{"v":1}'))
    with pytest.raises(KeyExists):
        store.transact(lambda tx: tx.create(K + "a", b"{}"))
    r2 = store.transact(lambda tx: tx.update(K + "a", b'{"v":2}', r1))
    with pytest.raises(RevisionConflict):
        store.transact(lambda tx: tx.update(K + "a", b'{"v":3}', r1))
    assert store.get(K + "a").value == b'{"v":2}' and store.get(K + "a").rev == r2
    rows, rev = store.list(K, revision=r1)
    assert [r.value for r in rows] == [b'{"v":1}']
    r3, _ = store.transact(lambda tx: tx.delete(K + "a"))
    assert store.get(K + "a") is None
    with pytest.raises(KeyNotFound):
        store.transact(lambda tx: tx.delete(K + "a"))
    evs = store.events_after(0, prefix=K)
    assert [(e.type, e.rev) for e in evs] == [("ADDED", r1), ("MODIFIED", r2), ("DELETED", r3)]
    assert evs[1].prev_value == b'{"v":1}'
    r4 = store.transact(lambda tx: tx.create(K + "a", b'{"v":4}'))  # recreate after delete
    assert r4 > r3


def test_failed_op_does_not_spoil_its_batch(store):
    futs = []
    for i in range(50):
        if i % 5 == 0:
            futs.append(store.submit(lambda tx: (_ for _ in ()).throw(ValueError("boom"))))
        futs.append(store.submit(lambda tx, i=i: tx.create(f"{K}b{i}", b"{}")))
    ok = [f for f in futs if f.exception(timeout=10) is None]
    assert len(ok) == 50
    assert len(store.list(K)[0]) == 50


def test_compaction_keeps_state_and_expires_history(store):
    r1 = store.transact(lambda tx: tx.create(K + "c", b"1"))
    store.transact(lambda tx: tx.create(K + "gone", b"x"))
    store.transact(lambda tx: tx.delete(K + "gone"))
    r2 = store.transact(lambda tx: tx.update(K + "c", b"2"))
    store.transact(lambda tx: tx.update(K + "c", b"3"))
    cur = store.current_revision()
    store.compact(r2)
    assert store.compacted_revision() == r2
    assert store.get(K + "c").value == b"3"
    with pytest.raises(Compacted):
        store.list(K, revision=r1)
    assert [r.value for r in store.list(K, revision=r2)[0]] == [b"2"]
    evs = store.events_after(r2, prefix=K)
    assert [e.value for e in evs] == [b"3"] and evs[0].prev_value == b"2"
    assert store.current_revision() == cur
    r5 = store.transact(lambda tx: tx.create(K + "gone", b"again"))
    assert r5 > cur


def test_concurrent_submitters_get_unique_ordered_revisions(store):
    revs = []
    lock = threading.Lock()

    def run(w):
        for i in range(50):
            r = store.transact(lambda tx: tx.create(f"{K}w{w}-{i}", b"{}"))
            with lock:
                revs.append(r)

    ts = [threading.Thread(target=run, args=(w,)) for w in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(set(revs)) == 400
    evs = store.events_after(0, limit=10000, prefix=K)
    assert [e.rev for e in evs] == sorted(revs)


def _shape(events):
    return [(e.rev, e.key, e.type, bytes(e.value), None if e.prev_value is None else bytes(e.prev_value))
            for e in events]


def test_commit_listeners_get_the_rows_events_after_reads_back(store):
    """What the writer hands the watch hub after a commit is exactly what the hub would read from the log:
    creates, updates, deletes (tombstones carry the last state), a re-create after a delete, and nothing of an
    operation that failed and was rolled back inside its batch."""
    got = []
    store.add_commit_listener(lambda rev, events: got.append((rev, list(events))))
    start = store.current_revision()
    r1 = store.transact(lambda tx: tx.create(K + "l", b'{"v":1}'))
    store.transact(lambda tx: tx.update(K + "l", b'{"v":2}', r1))
    futs = [store.submit(lambda tx: tx.create(K + "m", b'{"m":1}')),
            store.submit(lambda tx: (tx.create(K + "n", b"{}"), (_ for _ in ()).throw(ValueError("boom")))),
            store.submit(lambda tx: tx.delete(K + "l", final_value=b'{"v":2,"gone":true}'))]
    assert [f.exception(timeout=10) is None for f in futs] == [True, False, True]
    store.transact(lambda tx: tx.create(K + "l", b'{"v":3}'))
    delivered = [ev for _rev, evs in got for ev in evs]
    assert _shape(delivered) == _shape(store.events_after(start, prefix=K))
    assert [rev for rev, _ in got] == [evs[-1].rev for _, evs in got]          # max revision of each commit
    assert [e.type for e in delivered] == ["ADDED", "MODIFIED", "ADDED", "DELETED", "ADDED"]
    assert not [e for e in delivered if e.key == K + "n"]                          # rolled back


def test_watch_hub_dispatches_a_commits_own_rows_and_reads_the_log_after_a_gap(store):
    import asyncio

    from apiserver.storage.hub import WatchHub

    async def run():
        hub = WatchHub(store)
        await hub.start()
        try:
            sub = hub.subscribe(K)
            queried = []
            real = store.events_after
            store.events_after = lambda *a, **k: (queried.append(a), real(*a, **k))[1]
            r1 = await asyncio.to_thread(store.transact, lambda tx: tx.create(K + "h1", b"{}"))
            await hub.wait_for(r1, timeout=5)
            assert [e.rev for e in sub.drain()] == [r1] and queried == []          # from memory, no query
            # a row the hub never heard of (written by "another API server") leaves a gap: the next commit
            # is not dispatched from memory but read from the log, both rows in order
            hub._on_commit, saved = (lambda rev, events: None), hub._on_commit
            store._listeners[-1] = hub._on_commit
            r2 = await asyncio.to_thread(store.transact, lambda tx: tx.create(K + "h2", b"{}"))
            store._listeners[-1] = saved
            hub._on_commit = saved
            r3 = await asyncio.to_thread(store.transact, lambda tx: tx.create(K + "h3", b"{}"))
            await hub.wait_for(r3, timeout=5)
            assert [e.rev for e in sub.drain()] == [r2, r3] and queried
        finally:
            await hub.stop()

    asyncio.run(run())
