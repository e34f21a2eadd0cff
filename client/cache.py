"""The informer's local copy of the cluster: a thread-safe, indexed object store.

Components read objects from here instead of asking the API server: the
informer keeps it current from one list + watch, and every ``sync(key)``
reads it for free. Keys are client-go's: ``namespace/name`` for namespaced
objects, ``name`` for cluster-scoped ones (``meta_namespace_key``), so a
work-queue key is also a store key.

Objects are shared, not copied. The store never mutates what it is given and
returns the very same dicts, because deep-copying every object on every read
would dominate a controller's cost. The price is a rule every caller keeps:
**never mutate an object obtained from a Store** (or handed to an informer
handler); ``copy.deepcopy`` it first and write the copy back through the API.

Indexers answer "which objects have value V" without a scan, e.g. pods by
node name for the kubelet. An index function takes an object and returns a
value, an iterable of values, or None (not indexed)::

    store = Store(indexers={"node": lambda pod: pod["spec"].get("nodeName")})
    store.by_index("node", "node-1")
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Iterable

IndexFunc = Callable[[dict], Any]
KeyFunc = Callable[[dict], str]


def meta_namespace_key(obj: dict) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects."""
    md = obj.get("metadata") or {}
    name = md.get("name")
    if not name:
        raise ValueError("object has no metadata.name")
    ns = md.get("namespace")
    return f"{ns}/{name}" if ns else name


def split_key(key: str) -> tuple[str | None, str]:
    """``"ns/name"`` -> ``("ns", "name")``; ``"name"`` -> ``(None, "name")``."""
    parts = key.split("/")
    if len(parts) == 1 and parts[0]:
        return None, parts[0]
    if len(parts) == 2 and parts[0] and parts[1]:
        return parts[0], parts[1]
    raise ValueError(f"unexpected key format: {key!r}")


def namespace_index(obj: dict) -> str | None:
    """The index function behind the usual ``"namespace"`` indexer."""
    return (obj.get("metadata") or {}).get("namespace")


def resource_version(obj: dict | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("resourceVersion") or ""


def _index_values(fn: IndexFunc, obj: dict) -> list[str]:
    value = fn(obj)
    if value is None:
        return []
    if isinstance(value, (str, bytes, int)):
        return [value]  # type: ignore[list-item]
    return [v for v in value if v is not None]


class Store:
    """Thread-safe cache of API objects keyed by ``key_func`` (see the module docstring)."""

    def __init__(self, indexers: dict[str, IndexFunc] | None = None, key_func: KeyFunc = meta_namespace_key):
        self._lock = threading.RLock()
        self._items: dict[str, dict] = {}
        self._key_func = key_func
        self._indexers: dict[str, IndexFunc] = dict(indexers or {})
        # index name -> indexed value -> keys
        self._indices: dict[str, dict[Any, set[str]]] = {name: {} for name in self._indexers}
        self.resource_version = ""  # of the last replace()

    # ----------------------------------------------------------- writes
    def key(self, obj: dict) -> str:
        return self._key_func(obj)

    def add(self, obj: dict) -> dict | None:
        """Insert or replace ``obj``; returns the object it replaced, if any."""
        key = self._key_func(obj)
        with self._lock:
            old = self._items.get(key)
            self._items[key] = obj
            self._reindex(key, old, obj)
            return old

    update = add

    def delete(self, obj_or_key: dict | str) -> dict | None:
        """Remove by object or key; returns the removed object (None if absent)."""
        key = obj_or_key if isinstance(obj_or_key, str) else self._key_func(obj_or_key)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._reindex(key, old, None)
            return old

    def replace(self, items: Iterable[dict], resource_version: str = "") -> None:
        """Swap the whole content for ``items`` (the result of a list) at once."""
        new_items = {self._key_func(obj): obj for obj in items}
        with self._lock:
            self._items = new_items
            self._indices = {name: {} for name in self._indexers}
            for key, obj in new_items.items():
                self._reindex(key, None, obj)
            self.resource_version = resource_version

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        """Add index functions (existing objects are indexed at once)."""
        with self._lock:
            for name, fn in indexers.items():
                if name in self._indexers:
                    if self._indexers[name] is fn:
                        continue
                    raise ValueError(f"indexer {name!r} already exists")
                self._indexers[name] = fn
                index: dict[Any, set[str]] = {}
                for key, obj in self._items.items():
                    for value in _index_values(fn, obj):
                        index.setdefault(value, set()).add(key)
                self._indices[name] = index

    def _reindex(self, key: str, old: dict | None, new: dict | None) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            if old is not None:
                for value in _index_values(fn, old):
                    keys = index.get(value)
                    if keys is not None:
                        keys.discard(key)
                        if not keys:
                            del index[value]
            if new is not None:
                for value in _index_values(fn, new):
                    index.setdefault(value, set()).add(key)

    # ------------------------------------------------------------ reads
    def get(self, obj_or_key: dict | str) -> dict | None:
        """The stored object for a key, or with the same key as a given object."""
        key = obj_or_key if isinstance(obj_or_key, str) else self._key_func(obj_or_key)
        return self.get_by_key(key)

    def get_by_key(self, key: str) -> dict | None:
        with self._lock:
            return self._items.get(key)

    def list(self) -> list[dict]:
        with self._lock:
            return list(self._items.values())

    def list_keys(self) -> list[str]:
        with self._lock:
            return list(self._items)

    def items(self) -> list[tuple[str, dict]]:
        with self._lock:
            return list(self._items.items())

    def by_index(self, index_name: str, value: Any) -> list[dict]:
        """Objects whose index function yields ``value``."""
        with self._lock:
            if index_name not in self._indices:
                raise KeyError(f"no indexer named {index_name!r}")
            keys = self._indices[index_name].get(value, ())
            return [self._items[k] for k in sorted(keys)]

    def index_keys(self, index_name: str, value: Any) -> list[str]:
        with self._lock:
            if index_name not in self._indices:
                raise KeyError(f"no indexer named {index_name!r}")
            return sorted(self._indices[index_name].get(value, ()))

    def index_values(self, index_name: str) -> list[Any]:
        """Every value currently present in an index."""
        with self._lock:
            if index_name not in self._indices:
                raise KeyError(f"no indexer named {index_name!r}")
            return list(self._indices[index_name])

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items


__all__ = ["Store", "meta_namespace_key", "split_key", "namespace_index", "resource_version"]
