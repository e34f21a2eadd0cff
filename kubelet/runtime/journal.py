"""The runtime's state (its sandbox and container records) in one append-only file.

Why not a file per record, as before: every change rewrote a record through a
new temporary file and a rename, three to four new inodes per pod start and
as many unlinked. On this machine's filesystem (ext4 without a journal) a new
inode right after many deletions is expensive — the allocator steps over
every inode deleted in the last minute, reading its inode block — and in a
burst of pod starts that followed deletions ``perf`` put 5–20% of all CPU
there. containerd keeps its metadata in one database file for the same kind
of reason.

So each change is one line appended to ``<dir>/journal.jsonl``: ``{"k": kind,
"id": id, "v": record}`` or, for a removal, ``{"k": kind, "id": id}``. Loading
replays the lines in order; a last line cut short by a crash (the only one
that can be) is ignored, which loses at most that one change, as a crash
between writing and renaming a temporary file did. When the file has grown
to several times the live records, it is compacted: the live records are
written to a temporary file that replaces the journal (a rename, once in a
few hundred changes). Nothing is fsync-ed: the records describe processes
that do not survive a machine crash either.

The layout of earlier versions (``sandboxes/ID.json``, ``containers/ID.json``)
is read once at load, folded into the journal and removed.
"""
from __future__ import annotations

import os
from typing import Any

import orjson

COMPACT_MIN_LINES = 1000       # never compact a journal shorter than this
COMPACT_FACTOR = 4             # compact when the lines outnumber the live records this many times


class StateJournal:
    def __init__(self, directory: str, kinds: tuple[str, ...]):
        self.dir = directory
        self.path = os.path.join(directory, "journal.jsonl")
        self.kinds = kinds
        self.live: dict[str, dict[str, Any]] = {k: {} for k in kinds}
        self.lines = 0
        self._f = None
        self._old: list[tuple[str, list[str]]] = []     # directories of the old layout, removed at compaction
        self._loaded = False
        os.makedirs(directory, exist_ok=True)

    # ------------------------------------------------------------------ load
    def load(self) -> dict[str, dict[str, Any]]:
        """Every live record, by kind and id (also kept to compact from). Loaded once; a write before
        any load loads first, so a compaction can never drop records it has not read."""
        if self._loaded:
            return {k: dict(v) for k, v in self.live.items()}
        self._loaded = True
        try:
            with open(self.path, "rb") as f:
                for line in f:
                    self.lines += 1
                    try:
                        entry = orjson.loads(line)
                        kind, id_ = entry["k"], entry["id"]
                    except (ValueError, KeyError, TypeError):
                        continue              # a torn last line, or garbage: skipped
                    if kind not in self.live:
                        continue
                    if "v" in entry:
                        self.live[kind][id_] = entry["v"]
                    else:
                        self.live[kind].pop(id_, None)
        except FileNotFoundError:
            pass
        migrated = self._load_old_layout()
        if migrated or self.lines > COMPACT_MIN_LINES:
            self.compact()
        return {k: dict(v) for k, v in self.live.items()}

    def _load_old_layout(self) -> bool:
        found = False
        for kind in self.kinds:
            d = os.path.join(self.dir, kind)
            try:
                names = os.listdir(d)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for fn in names:
                path = os.path.join(d, fn)
                if fn.endswith(".json"):
                    try:
                        with open(path, "rb") as f:
                            self.live[kind].setdefault(fn[:-5], orjson.loads(f.read()))
                    except (OSError, ValueError):
                        pass
                found = True
            self._old.append((d, names))
        return found

    # ----------------------------------------------------------------- write
    def put(self, kind: str, id_: str, record: dict) -> None:
        if not self._loaded:
            self.load()
        self.live[kind][id_] = record
        self._append(orjson.dumps({"k": kind, "id": id_, "v": record}))

    def delete(self, kind: str, id_: str) -> None:
        if not self._loaded:
            self.load()
        if self.live[kind].pop(id_, None) is not None:
            self._append(orjson.dumps({"k": kind, "id": id_}))

    def _append(self, data: bytes) -> None:
        if self._f is None:
            self._f = open(self.path, "ab", buffering=0)
        self._f.write(data + b"\n")      # one write per change: a crash tears at most this line
        self.lines += 1
        if self.lines > COMPACT_MIN_LINES and self.lines > COMPACT_FACTOR * sum(map(len, self.live.values())):
            self.compact()

    def compact(self) -> None:
        """Replace the journal with one line per live record."""
        tmp = self.path + ".tmp"
        n = 0
        with open(tmp, "wb") as f:
            for kind, records in self.live.items():
                for id_, record in records.items():
                    f.write(orjson.dumps({"k": kind, "id": id_, "v": record}) + b"\n")
                    n += 1
        os.replace(tmp, self.path)
        if self._f is not None:
            self._f.close()
            self._f = None
        self.lines = n
        for d, names in self._old:
            for fn in names:
                try:
                    os.unlink(os.path.join(d, fn))
                except (FileNotFoundError, IsADirectoryError, PermissionError):
                    pass
            try:
                os.rmdir(d)
            except OSError:
                pass
        self._old = []

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
