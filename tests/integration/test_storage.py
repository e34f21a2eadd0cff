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
