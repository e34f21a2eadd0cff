"""The informer Store: keys, indexes, replace, thread safety."""
from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings, strategies as st

from client.cache import Store, meta_namespace_key, namespace_index, split_key


def pod(name: str, ns: str = "default", node: str | None = None, rv: str = "1", labels=None) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "labels": labels or {}},
            "spec": {"nodeName": node} if node else {}}


def by_node(obj):
    return obj["spec"].get("nodeName")


def test_keys():
    assert meta_namespace_key(pod("a", "ns")) == "ns/a"
    assert meta_namespace_key({"metadata": {"name": "node-1"}}) == "node-1"
    with pytest.raises(ValueError):
        meta_namespace_key({"metadata": {}})
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("node-1") == (None, "node-1")
    for bad in ("", "a/b/c", "/a", "a/"):
        with pytest.raises(ValueError):
            split_key(bad)


def test_add_get_update_delete():
    s = Store()
    p1 = pod("a")
    assert s.add(p1) is None
    assert s.get_by_key("default/a") is p1  # stored as-is, never copied
    assert s.get(pod("a")) is p1
    assert s.get("default/a") is p1
    p2 = pod("a", rv="2")
    assert s.update(p2) is p1
    assert s.get_by_key("default/a") is p2
    assert len(s) == 1 and "default/a" in s
    assert s.delete(pod("a")) is p2
    assert s.delete("default/a") is None
    assert s.get_by_key("default/a") is None
    assert len(s) == 0


def test_list_and_keys():
    s = Store()
    for name in ("a", "b", "c"):
        s.add(pod(name))
    s.add({"metadata": {"name": "n1"}})
    assert sorted(s.list_keys()) == ["default/a", "default/b", "default/c", "n1"]
    assert len(s.list()) == 4
    # The returned list is a snapshot: changing it does not change the store.
    s.list().clear()
    assert len(s) == 4


def test_replace_swaps_everything_and_records_rv():
    s = Store(indexers={"node": by_node})
    s.add(pod("old", node="n1"))
    s.replace([pod("a", node="n2"), pod("b", node="n2")], "17")
    assert sorted(s.list_keys()) == ["default/a", "default/b"]
    assert s.resource_version == "17"
    assert s.by_index("node", "n1") == []
    assert [o["metadata"]["name"] for o in s.by_index("node", "n2")] == ["a", "b"]


def test_indexes_follow_updates_and_deletes():
    s = Store(indexers={"node": by_node, "namespace": namespace_index})
    s.add(pod("a", "ns1", node="n1"))
    s.add(pod("b", "ns2", node="n1"))
    s.add(pod("c", "ns2"))  # unscheduled: not in the node index
    assert s.index_keys("node", "n1") == ["ns1/a", "ns2/b"]
    assert s.index_keys("namespace", "ns2") == ["ns2/b", "ns2/c"]
    s.update(pod("a", "ns1", node="n2"))
    assert s.index_keys("node", "n1") == ["ns2/b"]
    assert s.index_keys("node", "n2") == ["ns1/a"]
    s.delete("ns2/b")
    assert s.by_index("node", "n1") == []
    assert sorted(s.index_values("node")) == ["n2"]
    with pytest.raises(KeyError):
        s.by_index("missing", "x")


def test_multi_value_index_and_late_indexer():
    s = Store()
    s.add(pod("a", labels={"app": "web", "tier": "fe"}))
    s.add(pod("b", labels={"app": "db"}))

    def label_pairs(obj):
        return [f"{k}={v}" for k, v in obj["metadata"]["labels"].items()]

    s.add_indexers({"labels": label_pairs})  # existing objects are indexed at once
    assert s.index_keys("labels", "app=web") == ["default/a"]
    assert s.index_keys("labels", "tier=fe") == ["default/a"]
    assert s.index_keys("labels", "app=db") == ["default/b"]
    s.add_indexers({"labels": label_pairs})  # same function again: no-op
    with pytest.raises(ValueError):
        s.add_indexers({"labels": lambda o: None})


def test_store_never_mutates_objects():
    s = Store(indexers={"node": by_node})
    obj = pod("a", node="n1")
    snapshot = repr(obj)
    s.add(obj)
    s.replace([obj], "2")
    s.delete(obj)
    assert repr(obj) == snapshot


def test_concurrent_writers_and_readers():
    s = Store(indexers={"namespace": namespace_index})
    errors = []

    def writer(ns):
        try:
            for i in range(300):
                s.add(pod(f"p{i}", ns, rv=str(i)))
                if i % 3 == 0:
                    s.delete(f"{ns}/p{i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    def reader():
        try:
            for _ in range(300):
                s.list()
                s.by_index("namespace", "ns0")
        except Exception as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(f"ns{i}",)) for i in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert not errors
    assert len(s) == 4 * 200
    assert len(s.by_index("namespace", "ns2")) == 200


ops = st.lists(st.tuples(st.sampled_from(["add", "delete"]), st.sampled_from("abcde"),
                         st.sampled_from(["n1", "n2", None])), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_index_always_matches_a_scan(operations):
    s = Store(indexers={"node": by_node})
    for op, name, node in operations:
        if op == "add":
            s.add(pod(name, node=node))
        else:
            s.delete(f"default/{name}")
    for node in ("n1", "n2"):
        expected = sorted(s.key(o) for o in s.list() if by_node(o) == node)
        assert s.index_keys("node", node) == expected
