"""The runtime's state journal: replay, removal, a torn last line, compaction, and the old layout."""
from __future__ import annotations

import json
import os

from kubelet.runtime import journal as J
from kubelet.runtime.journal import StateJournal

KINDS = ("sandboxes", "containers")


def test_replay_puts_updates_and_deletes(tmp_path):
    j = StateJournal(str(tmp_path), KINDS)
    j.load()
    j.put("sandboxes", "s1", {"id": "s1", "state": "ready"})
    j.put("containers", "c1", {"id": "c1", "state": "created"})
    j.put("containers", "c1", {"id": "c1", "state": "running"})
    j.put("containers", "c2", {"id": "c2", "state": "created"})
    j.delete("containers", "c2")
    j.delete("containers", "nope")                 # not there: nothing written
    j.close()
    assert len(open(tmp_path / "journal.jsonl").read().splitlines()) == 5
    again = StateJournal(str(tmp_path), KINDS).load()
    assert again == {"sandboxes": {"s1": {"id": "s1", "state": "ready"}},
                     "containers": {"c1": {"id": "c1", "state": "running"}}}


def test_one_inode_for_every_change(tmp_path):
    j = StateJournal(str(tmp_path), KINDS)
    j.put("sandboxes", "s1", {"n": 0})
    ino = os.stat(tmp_path / "journal.jsonl").st_ino
    for i in range(50):
        j.put("sandboxes", "s1", {"n": i})
        j.put("containers", f"c{i}", {"n": i})
        j.delete("containers", f"c{i}")
    assert os.stat(tmp_path / "journal.jsonl").st_ino == ino
    assert os.listdir(tmp_path) == ["journal.jsonl"]


def test_a_torn_last_line_is_skipped(tmp_path):
    j = StateJournal(str(tmp_path), KINDS)
    j.put("sandboxes", "s1", {"id": "s1"})
    j.close()
    with open(tmp_path / "journal.jsonl", "ab") as f:
        f.write(b'{"k": "sandboxes", "id": "s2", "v": {"id": "s')
    assert StateJournal(str(tmp_path), KINDS).load()["sandboxes"] == {"s1": {"id": "s1"}}


def test_compaction_keeps_the_live_records_and_shrinks_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(J, "COMPACT_MIN_LINES", 20)
    j = StateJournal(str(tmp_path), KINDS)
    for i in range(200):
        j.put("containers", f"c{i}", {"i": i})
        if i % 10:
            j.delete("containers", f"c{i}")
    lines = open(tmp_path / "journal.jsonl").read().splitlines()
    assert len(lines) < 100
    assert StateJournal(str(tmp_path), KINDS).load()["containers"] == {f"c{i}": {"i": i} for i in range(0, 200, 10)}


def test_a_write_before_any_load_loads_first(tmp_path, monkeypatch):
    monkeypatch.setattr(J, "COMPACT_MIN_LINES", 5)
    j = StateJournal(str(tmp_path), KINDS)
    for i in range(10):
        j.put("sandboxes", f"s{i}", {"i": i})
    j.close()
    k = StateJournal(str(tmp_path), KINDS)      # never loaded explicitly; its compaction must keep s0..s9
    for i in range(40):
        k.put("containers", "c", {"i": i})
    k.close()
    assert len(StateJournal(str(tmp_path), KINDS).load()["sandboxes"]) == 10


def test_the_old_file_per_record_layout_is_folded_in_and_removed(tmp_path):
    for kind, id_ in (("sandboxes", "s1"), ("containers", "c1")):
        os.makedirs(tmp_path / kind)
        (tmp_path / kind / f"{id_}.json").write_text(json.dumps({"id": id_}))
    (tmp_path / "containers" / "c9.json.tmp").write_text("{")     # a leftover temporary file
    state = StateJournal(str(tmp_path), KINDS).load()
    assert state == {"sandboxes": {"s1": {"id": "s1"}}, "containers": {"c1": {"id": "c1"}}}
    assert sorted(os.listdir(tmp_path)) == ["journal.jsonl"]
    assert StateJournal(str(tmp_path), KINDS).load() == state


def test_a_restarted_runtime_recovers_its_records_from_the_journal(tmp_path):
    """What the daemon does at start: every record back, the running ones ended (their pipes died with it)."""
    from kubelet.runtime.cgroups import NoCgroups
    from kubelet.runtime.daemon import Container, Runtime, Sandbox

    rt = Runtime(str(tmp_path), cgroups=NoCgroups())
    rt.recover()
    sb = Sandbox(id="s1", pod={"uid": "u", "name": "p", "namespace": "default"}, hostname="p", network="pod", pid=0)
    rt.sandboxes["s1"] = sb
    rt._save(sb)
    for cid, state in (("c1", "running"), ("c2", "exited"), ("c3", "created")):
        c = Container(id=cid, sandbox_id="s1", name=cid, attempt=0, image="pocketkube/host", argv=["true"], env=[],
                      cwd="/", files=[], log_path="", state=state, exit_code=0 if state == "exited" else None)
        rt.containers[cid] = c
        rt._save(c)
    rt.containers["c3"].state = "running"
    rt._save(rt.containers["c3"])
    rt._unsave("containers", "c2")
    rt.journal.close()

    again = Runtime(str(tmp_path), cgroups=NoCgroups())
    again.recover()
    assert sorted(again.containers) == ["c1", "c3"]
    for c in again.containers.values():
        assert (c.state, c.exit_code, c.reason) == ("exited", 255, "Unknown")
        assert c.message == "the container runtime restarted"
    assert again.sandboxes["s1"].state == "notready"
    assert os.listdir(tmp_path / "state") == ["journal.jsonl"]
