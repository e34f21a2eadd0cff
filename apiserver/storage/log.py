"""The object store: one append-only log table in SQLAlchemy (the kine design).

Why a log and not a table of objects: Kubernetes semantics are built on a
global, monotonic revision. Every create, update and delete appends one row
whose autoincrement id *is* that revision (= the object's resourceVersion).
From that single table we get, with no second source of truth:

* current state: the newest row per key (a tombstone row means deleted);
* optimistic concurrency: an update names the revision it read; the row it
  appends records that revision as ``prev_revision``, and a unique index on
  (key, prev_revision) makes two writers that read the same revision collide;
* watch: "rows after revision R, in id order", replayable from any R that has
  not been compacted;
* consistent paginated lists: "newest row per key with id <= R".

Writers are serialized: SQLite has one writer by nature (we take the lock up
front with BEGIN IMMEDIATE so a read-then-write never deadlocks), and on
PostgreSQL every write transaction first takes one advisory lock, so ids are
assigned and committed in the same order. That is what lets a watcher on any
API server read "id > R" and never see a row appear behind its cursor.

All writes go through a single writer thread that commits whatever has queued
up in one transaction (group commit), each operation inside its own SAVEPOINT
so one failing operation (a conflict, a validation error) never spoils its
neighbours. An operation is a function run under the write lock, so the
registry can read, decide and write atomically (allocating a Service IP, for
example) without retry loops.

Compaction keeps, for every key, its state as of the compaction revision C
and everything after; superseded rows at or below C and tombstones at or
below C are removed. A watch or a continue token older than C gets 410.
"""
from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    exists,
    func,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

log = logging.getLogger("pocketkube.storage")

metadata = MetaData()

# SQLite needs INTEGER PRIMARY KEY AUTOINCREMENT so an id is never reused after
# compaction deletes the newest rows; PostgreSQL uses a BIGINT identity.
_Id = BigInteger().with_variant(Integer(), "sqlite")

log_table = Table(
    "pk_log",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    # Keys are compared as byte strings (prefix ranges): "C" collation on
    # PostgreSQL, whatever the database's locale; SQLite compares bytes anyway.
    Column("key", String(1024).with_variant(String(1024, collation="C"), "postgresql"), nullable=False),
    Column("created", Boolean, nullable=False, default=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("prev_revision", BigInteger, nullable=False, default=0),
    Column("value", LargeBinary, nullable=False),
    Index("pk_log_key_id", "key", "id"),
    Index("pk_log_key_prev", "key", "prev_revision", unique=True),
    sqlite_autoincrement=True,
)

meta_table = Table(
    "pk_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

_PG_WRITE_LOCK = 0x706B6C67  # "pklg": one advisory lock serializes all writers


class StorageError(Exception):
    """Base class of storage failures the API layer maps to Status bodies."""


class KeyExists(StorageError):
    pass


class KeyNotFound(StorageError):
    pass


class RevisionConflict(StorageError):
    """The key changed since the revision the caller read."""

    def __init__(self, key: str, expected: int, actual: int):
        super().__init__(f"{key}: expected revision {expected}, current {actual}")
        self.key, self.expected, self.actual = key, expected, actual


class Compacted(StorageError):
    """The requested revision is older than the compaction revision."""

    def __init__(self, requested: int, compacted: int):
        super().__init__(f"revision {requested} has been compacted (oldest available {compacted})")
        self.requested, self.compacted = requested, compacted


class StorageUnavailable(StorageError):
    pass


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    rev: int
    value: bytes

    def wire(self) -> bytes:
        """The object's JSON with its resourceVersion, without decoding it."""
        return wire_bytes(self.value, self.rev)


_MD_PREFIX = b'{"metadata":{'


def wire_bytes(value: bytes, rev: int) -> bytes:
    """Stamp the resourceVersion into stored JSON.

    dumps() writes metadata as the first key, so the version can be spliced
    in as bytes: listing 10,000 pods then costs no JSON decode or encode per
    object. Anything stored in another shape is decoded and re-encoded.
    """
    if value.startswith(_MD_PREFIX):
        rv = b'"resourceVersion":"%d"' % rev
        rest = value[len(_MD_PREFIX):]
        return _MD_PREFIX + rv + (rest if rest[:1] == b"}" else b"," + rest)
    return orjson.dumps(with_revision(value, rev))


class Event:
    """One log row seen as a watch event. Decoding is lazy and shared.

    The same Event is handed to every watcher, so the decoded objects are
    cached here and must be treated as read-only by everyone.
    """

    __slots__ = ("rev", "key", "type", "value", "prev_value", "_obj", "_prev", "_line")

    def __init__(self, rev: int, key: str, type_: str, value: bytes, prev_value: bytes | None):
        self.rev = rev
        self.key = key
        self.type = type_
        self.value = value
        self.prev_value = prev_value
        self._obj = None
        self._prev = None
        self._line = None

    @property
    def obj(self) -> dict:
        if self._obj is None:
            self._obj = with_revision(self.value, self.rev)
        return self._obj

    @property
    def prev_obj(self) -> dict | None:
        """The object before this change, stamped with *this* event's revision.

        Used when an object leaves a selector: the watcher gets DELETED with
        the last state that matched, at a revision it can resume from.
        """
        if self.prev_value is None:
            return None
        if self._prev is None:
            self._prev = with_revision(self.prev_value, self.rev)
        return self._prev

    def line(self) -> bytes:
        """The wire form `{"type":..,"object":..}\\n`, encoded once for all watchers."""
        if self._line is None:
            self._line = b'{"type":"%s","object":%s}\n' % (self.type.encode(), wire_bytes(self.value, self.rev))
        return self._line


def with_revision(value: bytes, rev: int) -> dict:
    obj = orjson.loads(value)
    md = obj.get("metadata")
    if md is None:
        md = obj["metadata"] = {}
    md["resourceVersion"] = str(rev)
    return obj


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string starting with prefix."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


class _SQL:
    """The hot-path statements, written once per dialect and run on the driver cursor.

    SQLAlchemy builds and caches the schema, engines, pools and transactions;
    but constructing Core expressions costs more per write than the write
    itself, so the few statements on the request path are plain SQL.
    """

    def __init__(self, dialect: str):
        p = "?" if dialect == "sqlite" else "%s"
        self.latest = f"SELECT id, deleted, value FROM pk_log WHERE key = {p} ORDER BY id DESC LIMIT 1"
        ins = f"INSERT INTO pk_log (key, created, deleted, prev_revision, value) VALUES ({p}, {p}, {p}, {p}, {p})"
        self.insert = ins if dialect == "sqlite" else ins + " RETURNING id"
        self.returning = dialect != "sqlite"
        self.list = (
            "SELECT l.key, l.id, l.value FROM pk_log l"
            f" WHERE l.key > {p} AND l.key < {p} AND l.id <= {p} AND l.deleted = {'0' if dialect == 'sqlite' else 'false'}"
            " AND NOT EXISTS (SELECT 1 FROM pk_log n"
            f"   WHERE n.key = l.key AND n.id > l.id AND n.id <= {p})"
            " ORDER BY l.key"
        )
        self.bool = (lambda b: 1 if b else 0) if dialect == "sqlite" else bool


class Tx:
    """The operations available to a function running under the write lock."""

    def __init__(self, conn: Connection, store: "Storage"):
        self._c = conn
        self._store = store
        self._sql = store._sql
        self._cur = conn.connection.dbapi_connection.cursor()
        self.max_rev = 0
        # the rows this operation appended, as watch events: handed to the commit listeners so the
        # watch hub need not read back what was just written (see hub.WatchHub._deliver)
        self.events: list[Event] = []

    def _latest(self, key: str):
        self._cur.execute(self._sql.latest, (key,))
        return self._cur.fetchone()  # (id, deleted, value) or None

    def get(self, key: str) -> Row | None:
        r = self._latest(key)
        if r is None or r[1]:
            return None
        return Row(key, r[0], bytes(r[2]))

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def list(self, prefix: str) -> list[Row]:
        return self._store._list_conn(self._c, prefix, None, None, None)

    def _insert(self, key: str, value: bytes, prev: int, created: bool = False, deleted: bool = False,
                prev_value: bytes | None = None) -> int:
        b = self._sql.bool
        try:
            self._cur.execute(self._sql.insert, (key, b(created), b(deleted), prev, value))
        except Exception as e:  # the driver's IntegrityError, whichever driver it is
            if "unique" in str(e).lower() or "duplicate" in str(e).lower():
                raise IntegrityError("insert", None, e) from e
            raise
        rev = int(self._cur.fetchone()[0]) if self._sql.returning else int(self._cur.lastrowid)
        self.max_rev = max(self.max_rev, rev)
        self.events.append(Event(rev, key, "DELETED" if deleted else ("ADDED" if created else "MODIFIED"),
                                 value, prev_value))
        return rev

    def create(self, key: str, value: bytes) -> int:
        r = self._latest(key)
        if r is not None and not r[1]:
            raise KeyExists(key)
        try:
            return self._insert(key, value, r[0] if r is not None else 0, created=True,
                                prev_value=bytes(r[2]) if r is not None else None)
        except IntegrityError as e:  # a racing writer (only possible without the lock)
            raise KeyExists(key) from e

    def update(self, key: str, value: bytes, expected_rev: int | None = None) -> int:
        r = self._latest(key)
        if r is None or r[1]:
            raise KeyNotFound(key)
        if expected_rev is not None and expected_rev != r[0]:
            raise RevisionConflict(key, expected_rev, r[0])
        try:
            return self._insert(key, value, r[0], prev_value=bytes(r[2]))
        except IntegrityError as e:
            raise RevisionConflict(key, r[0], -1) from e

    def delete(self, key: str, expected_rev: int | None = None, final_value: bytes | None = None) -> tuple[int, bytes]:
        """Append a tombstone carrying the object's last state; returns (rev, value)."""
        r = self._latest(key)
        if r is None or r[1]:
            raise KeyNotFound(key)
        if expected_rev is not None and expected_rev != r[0]:
            raise RevisionConflict(key, expected_rev, r[0])
        value = final_value if final_value is not None else bytes(r[2])
        try:
            return self._insert(key, value, r[0], deleted=True, prev_value=bytes(r[2])), value
        except IntegrityError as e:
            raise RevisionConflict(key, r[0], -1) from e


class _Op:
    __slots__ = ("fn", "future")

    def __init__(self, fn, future):
        self.fn = fn
        self.future = future


class Storage:
    """Thread-safe store. Reads run on the caller's thread; writes on the writer thread."""

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        max_batch: int = 256,
        poll_interval: float | None = None,
    ):
        self.url = url
        self.dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
        self.sqlite_synchronous = sqlite_synchronous.upper()
        if self.sqlite_synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError("sqlite synchronous must be NORMAL, FULL or EXTRA")
        self.max_batch = max_batch
        # How often a watch tailer polls for rows written by *other* processes.
        self.poll_interval = poll_interval if poll_interval is not None else (
            1.0 if self.dialect == "sqlite" else 0.1
        )
        self._sql = _SQL(self.dialect)
        self._write_engine, self._read_engine = self._make_engines(url)
        metadata.create_all(self._write_engine)
        self._queue: queue.Queue[_Op | None] = queue.Queue()
        self._listeners: list[Callable[[int, list[Event]], None]] = []
        self._thread: threading.Thread | None = None
        self._closed = False

    # ---------------------------------------------------------------- engines
    def _make_engines(self, url: str) -> tuple[Engine, Engine]:
        if self.dialect == "sqlite":
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            if not path or path == ":memory:":
                raise ValueError("SQLite storage needs a file path (sqlite:////path/to/db)")
            write = create_engine(url, pool_size=1, max_overflow=0)
            read = create_engine(url, pool_size=8, max_overflow=8)
            sync = self.sqlite_synchronous

            def on_connect(dbapi_conn, _rec):
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={sync}")
                cur.execute("PRAGMA busy_timeout=10000")
                cur.execute("PRAGMA foreign_keys=OFF")
                cur.close()

            event.listen(write, "connect", on_connect)
            event.listen(read, "connect", on_connect)

            @event.listens_for(write, "begin")
            def _begin_immediate(conn):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

            @event.listens_for(read, "begin")
            def _begin(conn):
                conn.exec_driver_sql("BEGIN")

            return write, read
        write = create_engine(url, pool_size=2, max_overflow=2, pool_pre_ping=True)
        read = create_engine(url, pool_size=8, max_overflow=8, pool_pre_ping=True)
        return write, read

    # ---------------------------------------------------------------- writer
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer, name="storage-writer", daemon=True)
            self._thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
        self._write_engine.dispose()
        self._read_engine.dispose()

    def add_commit_listener(self, fn: Callable[[int, list[Event]], None]) -> None:
        """fn(max_revision, events) is called on the writer thread after each commit, with the rows that
        commit appended as events, in revision order (what ``events_after`` would read back)."""
        self._listeners.append(fn)

    def submit(self, fn: Callable[[Tx], Any]) -> concurrent.futures.Future:
        """Run fn(tx) atomically under the global write lock; the future holds its result."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        if self._closed:
            fut.set_exception(StorageUnavailable("storage is closed"))
            return fut
        self.start()
        self._queue.put(_Op(fn, fut))
        return fut

    def transact(self, fn: Callable[[Tx], Any]) -> Any:
        return self.submit(fn).result()

    def _writer(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                return
            batch = [op]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Op]) -> None:
        results: list[tuple[_Op, bool, Any]] = []
        events: list[Event] = []
        max_rev = 0
        for attempt in range(5):
            results.clear()
            events.clear()
            max_rev = 0
            try:
                with self._write_engine.connect() as conn:
                    with conn.begin():
                        if self.dialect == "postgresql":
                            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_WRITE_LOCK})
                        cur = conn.connection.dbapi_connection.cursor()
                        for op in batch:
                            tx = Tx(conn, self)
                            cur.execute("SAVEPOINT pk_op")
                            try:
                                r = op.fn(tx)
                            except BaseException as e:  # noqa: BLE001 - handed to the caller
                                cur.execute("ROLLBACK TO SAVEPOINT pk_op")
                                cur.execute("RELEASE SAVEPOINT pk_op")
                                results.append((op, False, e))
                            else:
                                cur.execute("RELEASE SAVEPOINT pk_op")
                                results.append((op, True, r))
                                max_rev = max(max_rev, tx.max_rev)
                                events += tx.events      # a rolled-back operation's rows are gone
                break
            except OperationalError as e:
                log.warning("write batch failed (attempt %d): %s", attempt + 1, e)
                if attempt == 4:
                    for op in batch:
                        op.future.set_exception(StorageUnavailable(f"storage write failed: {e.orig}"))
                    return
                time.sleep(0.05 * (attempt + 1))
            except Exception as e:  # noqa: BLE001
                log.exception("write batch failed")
                for op in batch:
                    op.future.set_exception(StorageUnavailable(f"storage write failed: {e}"))
                return
        for op, ok, r in results:
            if ok:
                op.future.set_result(r)
            else:
                op.future.set_exception(r)
        if max_rev:
            events.sort(key=lambda ev: ev.rev)
            for fn in self._listeners:
                try:
                    fn(max_rev, events)
                except Exception:  # noqa: BLE001
                    log.exception("commit listener failed")

    # ---------------------------------------------------------------- reads
    def get(self, key: str) -> Row | None:
        with self._read_engine.connect() as c:
            cur = c.connection.dbapi_connection.cursor()
            cur.execute(self._sql.latest, (key,))
            r = cur.fetchone()
            cur.close()
        if r is None or r[1]:
            return None
        return Row(key, r[0], bytes(r[2]))

    def current_revision(self, conn: Connection | None = None) -> int:
        if conn is None:
            with self._read_engine.connect() as c:
                return self.current_revision(c)
        top = conn.execute(select(func.max(log_table.c.id))).scalar() or 0
        comp = conn.execute(select(meta_table.c.value).where(meta_table.c.name == "compact")).scalar() or 0
        return max(int(top), int(comp))

    def compacted_revision(self) -> int:
        with self._read_engine.connect() as c:
            return int(c.execute(select(meta_table.c.value).where(meta_table.c.name == "compact")).scalar() or 0)

    def _list_conn(self, c: Connection, prefix: str, revision: int | None, start_after: str | None,
                   limit: int | None) -> list[Row]:
        """The newest row per key under prefix, as of revision, in key order.

        "No newer row for this key at or below the revision" is an index probe
        per row on (key, id), and the scan itself walks that index in key
        order, so no grouping or sorting pass is needed. Run on the driver
        cursor: for 10,000 rows, SQLAlchemy's result objects cost more than
        the query.
        """
        lo = max(prefix, start_after) if start_after else prefix
        hi = prefix_end(prefix)
        rev = revision if revision is not None else (1 << 62)
        sql = self._sql.list + (f" LIMIT {int(limit)}" if limit else "")
        cur = c.connection.dbapi_connection.cursor()
        try:
            cur.execute(sql, (lo, hi, rev, rev))
            return [Row(k, i, bytes(v)) for k, i, v in cur.fetchall()]
        finally:
            cur.close()

    def list(self, prefix: str, *, revision: int | None = None, start_after: str | None = None,
             limit: int | None = None) -> tuple[list[Row], int]:
        """Objects under prefix as of `revision` (default: now) and that revision."""
        with self._read_engine.connect() as c:
            if self.dialect == "postgresql":
                c = c.execution_options(isolation_level="REPEATABLE READ")
            with c.begin():
                current = self.current_revision(c)
                if revision is not None and revision > 0:
                    comp = int(c.execute(select(meta_table.c.value).where(meta_table.c.name == "compact")).scalar() or 0)
                    if revision < comp:
                        raise Compacted(revision, comp)
                    if revision > current:
                        revision = current
                else:
                    revision = current
                rows = self._list_conn(c, prefix, revision, start_after, limit)
        return rows, revision

    def count(self, prefix: str) -> int:
        rows, _ = self.list(prefix)
        return len(rows)

    def events_after(self, rev: int, limit: int = 1000, prefix: str | None = None) -> list[Event]:
        """Log rows after rev, in order, each with the value it replaced."""
        prev = log_table.alias("p")
        q = (
            select(
                log_table.c.id, log_table.c.key, log_table.c.created, log_table.c.deleted,
                log_table.c.value, prev.c.value.label("prev_value"),
            )
            .select_from(log_table.outerjoin(prev, prev.c.id == log_table.c.prev_revision))
            .where(log_table.c.id > rev)
        )
        if prefix:
            q = q.where(log_table.c.key >= prefix, log_table.c.key < prefix_end(prefix))
        q = q.order_by(log_table.c.id).limit(limit)
        out = []
        with self._read_engine.connect() as c:
            for r in c.execute(q):
                t = "DELETED" if r.deleted else ("ADDED" if r.created else "MODIFIED")
                out.append(Event(r.id, r.key, t, r.value, r.prev_value))
        return out

    # ---------------------------------------------------------------- compaction
    def compact(self, revision: int) -> int:
        """Drop history at or below `revision` that no reader can need. Returns rows removed."""

        def op(tx: Tx) -> int:
            c = tx._c
            cur = int(c.execute(select(meta_table.c.value).where(meta_table.c.name == "compact")).scalar() or 0)
            if revision <= cur:
                return 0
            newer = log_table.alias("n")
            superseded = exists().where(
                newer.c.key == log_table.c.key, newer.c.id > log_table.c.id, newer.c.id <= revision
            )
            res = c.execute(
                log_table.delete().where(log_table.c.id <= revision).where(
                    (log_table.c.deleted == True) | superseded  # noqa: E712
                )
            )
            if cur:
                c.execute(meta_table.update().where(meta_table.c.name == "compact").values(value=revision))
            else:
                c.execute(meta_table.insert().values(name="compact", value=revision))
            return res.rowcount or 0

        return self.transact(op)


def storage_url_for(data_dir: str) -> str:
    return f"sqlite:///{os.path.join(os.path.abspath(data_dir), 'pocketkube.db')}"


def dumps(obj: Any) -> bytes:
    """Serialize an object for storage: metadata first, without resourceVersion.

    The resourceVersion is not stored (the row id is); putting metadata first
    lets wire_bytes() splice it back in without decoding (see there).
    """
    md = obj.get("metadata")
    if not isinstance(md, dict):
        return orjson.dumps(obj)
    if "resourceVersion" in md:
        md = {k: v for k, v in md.items() if k != "resourceVersion"}
    out = {"metadata": md}
    for k, v in obj.items():
        if k != "metadata":
            out[k] = v
    return orjson.dumps(out)


def iter_objects(rows: Iterable[Row]) -> Iterable[dict]:
    for r in rows:
        yield with_revision(r.value, r.rev)
