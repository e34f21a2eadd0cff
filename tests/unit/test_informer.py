"""Informers against a tiny in-memory API server speaking list + watch over real HTTP.

The fake (``FakeApi``) keeps one collection of pods with a revision counter
and an event log, pages lists with continue tokens, streams watches as
chunked newline-delimited JSON from any revision, and has knobs the tests
turn: drop every open watch (abruptly or cleanly), refuse requests (503, as
an API server that is down), compact (watches from older revisions get 410,
as an ERROR event or an HTTP status), and send bookmarks.
"""
from __future__ import annotations

import copy
import http.server
import socket
import threading
import time
from urllib.parse import parse_qs, urlparse

import orjson
import pytest

from api import resources as R
from client.errors import ServiceUnavailable
from client.informer import Backoff, Informer, SharedInformers
from client.kubeconfig import Config
from client.rest import Client

COLLECTION = "/api/v1/namespaces/default/pods"


def status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class FakeApi:
    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.rev = 1
        self.objects: dict[str, dict] = {}
        self.log: list[tuple[int, str, dict]] = []
        self.compacted = 0
        self.gone_as = "event"          # or "http"
        self.down = False                # answer 503 to everything
        self.generation = 0              # bumping it ends every open watch
        self.clean_drop = False
        self.bookmarks: list[int] = []   # revisions to announce with a BOOKMARK
        self.requests: list[tuple[str, dict]] = []
        self.snapshots: dict[int, list[dict]] = {}
        self.closing = False

    # -------------------------------------------------------------- mutations
    def _record(self, etype: str, obj: dict) -> dict:
        self.rev += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rev)
        self.log.append((self.rev, etype, obj))
        self.cond.notify_all()
        return obj

    def create(self, name: str, **labels: str) -> dict:
        with self.cond:
            obj = self._record("ADDED", {"apiVersion": "v1", "kind": "Pod",
                                         "metadata": {"name": name, "namespace": "default", "labels": labels},
                                         "spec": {}})
            self.objects[name] = obj
            return obj

    def update(self, name: str, **spec) -> dict:
        with self.cond:
            obj = copy.deepcopy(self.objects[name])
            obj["spec"].update(spec)
            obj = self._record("MODIFIED", obj)
            self.objects[name] = obj
            return obj

    def delete(self, name: str) -> dict:
        with self.cond:
            obj = self.objects.pop(name)
            return self._record("DELETED", obj)

    def bump(self) -> int:
        """A write elsewhere in the store: the revision moves, this collection does not."""
        with self.cond:
            self.rev += 1
            return self.rev

    def bookmark(self) -> None:
        with self.cond:
            self.bookmarks.append(self.rev)
            self.cond.notify_all()

    def compact(self) -> None:
        with self.cond:
            self.compacted = self.rev

    def drop_watches(self, clean: bool = False) -> None:
        with self.cond:
            self.clean_drop = clean
            self.generation += 1
            self.cond.notify_all()

    def watch_requests(self) -> list[dict]:
        with self.cond:
            return [q for _, q in self.requests if q.get("watch") == "1"]

    def list_requests(self) -> list[dict]:
        with self.cond:
            return [q for _, q in self.requests if q.get("watch") != "1"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "Server"

    def log_message(self, *args) -> None:
        pass

    def send_json(self, code: int, body: dict) -> None:
        data = orjson.dumps(body)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        api = self.server.api
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with api.cond:
            api.requests.append((url.path, query))
            down = api.down
        if url.path not in (COLLECTION, "/api/v1/pods"):
            return self.send_json(404, status(404, "NotFound", "the server could not find the requested resource"))
        if down:
            return self.send_json(503, status(503, "ServiceUnavailable", "apiserver is shutting down"))
        if query.get("watch") == "1":
            return self.watch(api, query)
        return self.list(api, query)

    def list(self, api: FakeApi, query: dict) -> None:
        with api.cond:
            if "continue" in query:
                rev, offset = (int(x) for x in query["continue"].split(":"))
                items = api.snapshots[rev]
            else:
                rev, offset = api.rev, 0
                items = [api.objects[k] for k in sorted(api.objects)]
                api.snapshots[rev] = items
        limit = int(query.get("limit", 0)) or len(items) or 1
        page = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items[offset:offset + limit]]
        md = {"resourceVersion": str(rev)}
        if offset + limit < len(items):
            md["continue"] = f"{rev}:{offset + limit}"
        self.send_json(200, {"kind": "PodList", "apiVersion": "v1", "metadata": md, "items": page})

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def watch(self, api: FakeApi, query: dict) -> None:
        rv = int(query.get("resourceVersion") or api.rev)
        deadline = time.monotonic() + float(query.get("timeoutSeconds", 60))
        bookmarks = query.get("allowWatchBookmarks") == "true"
        with api.cond:
            too_old = rv < api.compacted
            generation = api.generation
        if too_old and api.gone_as == "http":
            return self.send_json(410, status(410, "Expired", f"too old resource version: {rv} ({api.compacted})"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if too_old:
            err = {"type": "ERROR", "object": status(410, "Expired", f"too old resource version: {rv}")}
            self.chunk(orjson.dumps(err) + b"\n")
            self.chunk(b"")
            return
        try:
            while True:
                with api.cond:
                    if api.generation != generation or api.closing:
                        break
                    events = [(r, t, o) for r, t, o in api.log if r > rv]
                    marks = [m for m in api.bookmarks if m > rv] if bookmarks else []
                    if not events and not marks:
                        if time.monotonic() >= deadline:
                            self.chunk(b"")
                            return
                        api.cond.wait(0.02)
                        continue
                for r, etype, obj in events:
                    line = orjson.dumps({"type": etype, "object": obj}) + b"\n"
                    half = len(line) // 2
                    self.chunk(line[:half])  # a line split across chunks, as networks do
                    self.chunk(line[half:])
                    rv = r
                for mark in marks:
                    md = {"resourceVersion": str(mark)}
                    self.chunk(orjson.dumps({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
                                                                             "metadata": md}}) + b"\n")
                    rv = max(rv, mark)
            # Dropped: cleanly (end of stream) or abruptly (no final chunk).
            if api.clean_drop:
                self.chunk(b"")
            else:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            self.close_connection = True


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    api: FakeApi


@pytest.fixture
def api():
    fake = FakeApi()
    server = Server(("127.0.0.1", 0), Handler)
    server.api = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    with fake.cond:
        fake.closing = True
        fake.cond.notify_all()
    server.shutdown()
    server.server_close()
    thread.join(2)


@pytest.fixture
def client(api):
    c = Client(Config(server=api.url), timeout=2.0)
    yield c
    c.close()


@pytest.fixture
def make_informer(client):
    made: list[Informer] = []

    def make(**kwargs) -> Informer:
        kwargs.setdefault("backoff_initial", 0.01)
        kwargs.setdefault("backoff_max", 0.05)
        inf = Informer(client, R.PODS, "default", **kwargs)
        made.append(inf)
        return inf

    yield make
    for inf in made:
        inf.stop(timeout=2)


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple] = []

    def on_add(self, obj):
        with self.lock:
            self.events.append(("add", obj["metadata"]["name"], obj["metadata"]["resourceVersion"]))

    def on_update(self, old, new):
        with self.lock:
            self.events.append(("update", new["metadata"]["name"], old["metadata"]["resourceVersion"],
                                new["metadata"]["resourceVersion"]))

    def on_delete(self, obj):
        with self.lock:
            self.events.append(("delete", obj["metadata"]["name"]))

    def attach(self, informer: Informer) -> "Recorder":
        informer.add_handler(on_add=self.on_add, on_update=self.on_update, on_delete=self.on_delete)
        return self

    def snapshot(self) -> list[tuple]:
        with self.lock:
            return list(self.events)

    def wait_for(self, n: int, timeout: float = 2.0) -> list[tuple]:
        wait_until(lambda: len(self.snapshot()) >= n, timeout)
        return self.snapshot()


def wait_until(predicate, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def names(informer: Informer) -> list[str]:
    return sorted(o["metadata"]["name"] for o in informer.store.list())


# ----------------------------------------------------------------------- tests

def test_initial_sync_with_pagination_then_watch_from_list_rv(api, make_informer):
    for i in range(7):
        api.create(f"p{i}")
    inf = make_informer(page_size=3)
    rec = Recorder().attach(inf)
    assert not inf.has_synced()
    inf.start()
    assert inf.wait_for_sync(2)
    assert names(inf) == [f"p{i}" for i in range(7)]
    assert sorted(e[1] for e in rec.snapshot()) == [f"p{i}" for i in range(7)]
    assert all(e[0] == "add" for e in rec.snapshot())
    lists = api.list_requests()
    assert [q.get("continue") for q in lists] == [None, "8:3", "8:6"]
    assert all(q["limit"] == "3" for q in lists)
    wait_until(lambda: api.watch_requests())
    w = api.watch_requests()[0]
    assert w["resourceVersion"] == "8" and w["allowWatchBookmarks"] == "true"
    assert 300 <= int(w["timeoutSeconds"]) <= 600
    # List items came without type meta; the informer's objects have it.
    assert inf.store.get_by_key("default/p0")["kind"] == "Pod"


def test_watch_events_reach_store_and_handlers(api, make_informer):
    api.create("a")
    inf = make_informer()
    rec = Recorder().attach(inf)
    inf.start()
    assert inf.wait_for_sync(2)
    api.create("b")
    api.update("a", nodeName="n1")
    api.delete("b")
    events = rec.wait_for(4)
    assert events == [("add", "a", "2"), ("add", "b", "3"), ("update", "a", "2", "4"), ("delete", "b")]
    assert names(inf) == ["a"]
    assert inf.store.get_by_key("default/a")["spec"] == {"nodeName": "n1"}
    assert inf.last_resource_version == "5"


def test_handler_added_after_sync_gets_synthetic_adds_then_events(api, make_informer):
    api.create("a")
    api.create("b")
    inf = make_informer()
    inf.start()
    assert inf.wait_for_sync(2)
    rec = Recorder().attach(inf)
    assert sorted(rec.snapshot()) == [("add", "a", "2"), ("add", "b", "3")]
    api.create("c")
    assert rec.wait_for(3)[-1] == ("add", "c", "4")
    time.sleep(0.05)
    assert len(rec.snapshot()) == 3  # nothing twice


def test_remove_handler_and_failing_handler(api, make_informer):
    inf = make_informer()
    calls = []

    def broken(obj):
        calls.append(obj["metadata"]["name"])
        raise RuntimeError("handler bug")

    handle = inf.add_handler(on_add=broken)
    rec = Recorder().attach(inf)
    inf.start()
    assert inf.wait_for_sync(2)
    api.create("a")
    rec.wait_for(1)
    inf.remove_handler(handle)
    api.create("b")
    rec.wait_for(2)
    assert calls == ["a"]  # the failing handler did not stop the informer


def test_disconnect_and_resume_without_duplicates_or_gaps(api, make_informer):
    api.create("a")
    api.create("b")
    inf = make_informer()
    rec = Recorder().attach(inf)
    inf.start()
    assert inf.wait_for_sync(2)
    api.update("a", x=1)
    rec.wait_for(3)
    wait_until(lambda: len(api.watch_requests()) == 1)

    # The API server goes away mid-watch; changes happen while we are gone.
    api.down = True
    api.drop_watches()
    api.create("c")
    api.update("b", y=2)
    api.delete("a")
    wait_until(lambda: len(api.watch_requests()) >= 2)  # a failed retry (503) happened
    assert names(inf) == ["a", "b"]  # the store is kept while the server is down
    assert inf.has_synced()
    api.down = False

    events = rec.wait_for(6)
    assert events == [
        ("add", "a", "2"), ("add", "b", "3"), ("update", "a", "2", "4"),
        ("add", "c", "5"), ("update", "b", "3", "6"), ("delete", "a"),
    ]
    assert names(inf) == ["b", "c"]
    assert len(api.list_requests()) == 1  # resumed, never relisted
    assert {q["resourceVersion"] for q in api.watch_requests()[1:]} == {"4"}
    time.sleep(0.05)
    assert len(rec.snapshot()) == 6


def test_clean_end_of_watch_resumes_from_last_rv(api, make_informer):
    inf = make_informer()
    rec = Recorder().attach(inf)
    inf.start()
    assert inf.wait_for_sync(2)
    api.create("a")
    rec.wait_for(1)
    api.drop_watches(clean=True)
    wait_until(lambda: len(api.watch_requests()) >= 2)
    api.create("b")
    assert rec.wait_for(2) == [("add", "a", "2"), ("add", "b", "3")]
    assert api.watch_requests()[1]["resourceVersion"] == "2"
    assert len(api.list_requests()) == 1


def test_bookmark_advances_resume_point(api, make_informer):
    api.create("a")
    inf = make_informer()
    inf.start()
    assert inf.wait_for_sync(2)
    wait_until(lambda: api.watch_requests())
    rev = api.bump()
    api.bookmark()
    wait_until(lambda: inf.last_resource_version == str(rev))
    api.drop_watches()
    wait_until(lambda: len(api.watch_requests()) >= 2)
    assert api.watch_requests()[1]["resourceVersion"] == str(rev)
    assert names(inf) == ["a"]


@pytest.mark.parametrize("gone_as", ["event", "http"])
def test_410_relists_and_emits_the_difference(api, make_informer, gone_as):
    api.gone_as = gone_as
    for name in ("a", "b", "c"):
        api.create(name)
    inf = make_informer()
    rec = Recorder().attach(inf)
    inf.start()
    assert inf.wait_for_sync(2)
    rec.wait_for(3)
    wait_until(lambda: api.watch_requests())

    api.down = True
    api.drop_watches()
    api.delete("b")
    api.update("c", z=1)
    api.create("d")
    api.compact()  # the events above are gone from the server's history
    wait_until(lambda: len(api.watch_requests()) >= 2)
    api.down = False

    wait_until(lambda: len(api.list_requests()) == 2)
    events = rec.wait_for(6)
    assert sorted(events[3:]) == sorted([("delete", "b"), ("update", "c", "4", "6"), ("add", "d", "7")])
    assert names(inf) == ["a", "c", "d"]
    assert inf.store.get_by_key("default/c")["spec"] == {"z": 1}
    # After the relist it watches from the new list's resourceVersion.
    wait_until(lambda: api.watch_requests()[-1].get("resourceVersion") == "7")
    api.create("e")
    assert rec.wait_for(7)[-1] == ("add", "e", "8")


def test_server_down_at_start_then_up(api, make_informer):
    api.down = True
    inf = make_informer()
    inf.start()
    wait_until(lambda: len(api.list_requests()) >= 3)
    assert not inf.has_synced()
    assert not inf.wait_for_sync(0.01)
    api.create("a")
    api.down = False
    assert inf.wait_for_sync(2)
    assert names(inf) == ["a"]


def test_failures_back_off_instead_of_hot_looping(api, make_informer):
    api.down = True
    inf = make_informer(backoff_initial=0.02, backoff_max=0.1)
    inf.start()
    time.sleep(0.4)
    inf.stop()
    attempts = len(api.list_requests())
    # 10 + 20 + 40 + 80 + 100... ms (times 0.5..1 jitter): a handful, not hundreds.
    assert 2 <= attempts <= 15


def test_backoff_is_capped_with_jitter():
    b = Backoff(initial=0.1, maximum=5.0)
    delays = [b.next_delay() for _ in range(20)]
    assert all(0.05 <= d <= 5.0 for d in delays)
    assert max(delays[-5:]) > 2.4  # reached the cap region
    b.reset()
    assert b.next_delay() <= 0.1


def test_stop_is_prompt_while_watch_is_idle(api, make_informer):
    api.create("a")
    inf = make_informer()
    inf.start()
    assert inf.wait_for_sync(2)
    wait_until(lambda: api.watch_requests())
    time.sleep(0.05)  # the informer thread is now blocked reading the stream
    start = time.monotonic()
    inf.stop(timeout=2)
    assert time.monotonic() - start < 0.5
    assert all(not t.is_alive() for t in threading.enumerate() if t.name.startswith("informer-pods"))


def test_resync_replays_store_as_updates(api, make_informer):
    api.create("a")
    inf = make_informer(resync_period=0.05)
    rec = Recorder().attach(inf)
    inf.start()
    assert inf.wait_for_sync(2)
    events = rec.wait_for(3)
    assert events[0] == ("add", "a", "2")
    assert ("update", "a", "2", "2") in events[1:]


def test_selectors_are_sent_on_list_and_watch(api, make_informer):
    inf = make_informer(label_selector="app=web", field_selector="spec.nodeName=n1")
    inf.start()
    assert inf.wait_for_sync(2)
    wait_until(lambda: api.watch_requests())
    for q in (api.list_requests()[0], api.watch_requests()[0]):
        assert q["labelSelector"] == "app=web" and q["fieldSelector"] == "spec.nodeName=n1"


def test_indexers_on_informer_store(api, make_informer):
    api.create("a", app="web")
    api.create("b", app="db")
    inf = make_informer(indexers={"app": lambda o: o["metadata"]["labels"].get("app")})
    inf.start()
    assert inf.wait_for_sync(2)
    assert [o["metadata"]["name"] for o in inf.store.by_index("app", "web")] == ["a"]


def test_shared_informers(api, client):
    api.create("a")
    factory = SharedInformers(client, backoff_initial=0.01, backoff_max=0.05)
    pods = factory.informer_for(R.PODS, "default")
    assert factory.informer_for(R.PODS, "default") is pods
    labelled = factory.informer_for(R.PODS, "default", label_selector="app=x")
    assert labelled is not pods
    late_index = factory.informer_for(R.PODS, "default", indexers={"ns": lambda o: o["metadata"]["namespace"]})
    assert late_index is pods
    try:
        factory.start_all()
        assert factory.wait_for_sync(2)
        assert pods.has_synced() and labelled.has_synced()
        assert [o["metadata"]["name"] for o in pods.store.by_index("ns", "default")] == ["a"]
        # Requested after start_all: started at once.
        all_pods = factory.informer_for(R.PODS)
        assert all_pods.wait_for_sync(2)
        assert len(factory.informers()) == 3
    finally:
        start = time.monotonic()
        factory.stop_all(timeout=2)
        assert time.monotonic() - start < 1.0


def test_informer_list_errors_are_typed(api, client):
    api.down = True
    with pytest.raises(ServiceUnavailable):
        client.list_all(R.PODS, "default")
