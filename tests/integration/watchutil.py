"""A minimal raw watch reader for tests: no client library between us and the wire."""
from __future__ import annotations

import json
import queue
import threading

import httpx


class RawWatch:
    """Reads a watch stream on a thread and queues (type, object) pairs."""

    def __init__(self, base: str, path: str, params: dict | None = None, headers: dict | None = None):
        self.events: queue.Queue = queue.Queue()
        self._client = httpx.Client(base_url=base, timeout=httpx.Timeout(30, read=None))
        p = {"watch": "1", **(params or {})}
        self._cm = self._client.stream("GET", path, params=p, headers=headers or {})
        self.response = self._cm.__enter__()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line.strip():
                    ev = json.loads(line)
                    self.events.put((ev["type"], ev["object"]))
        except Exception:  # noqa: BLE001 - closed by the test
            pass
        self.events.put(None)

    def next(self, timeout: float = 5.0, skip_bookmarks: bool = True):
        while True:
            ev = self.events.get(timeout=timeout)
            if ev is None:
                return None
            if skip_bookmarks and ev[0] == "BOOKMARK":
                continue
            return ev

    def close(self) -> None:
        try:
            self._cm.__exit__(None, None, None)
        except Exception:  # noqa: BLE001
            pass
        self._client.close()
