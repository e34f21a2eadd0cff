"""The REST client every pocketkube component talks to the API server through.

It speaks the Kubernetes wire protocol, nothing pocketkube-specific, so the
same code would work against a real cluster: URLs come from the shared
resource table (``api.resources.ResourceType.collection_path/object_path``),
bodies are JSON (orjson), errors are metav1 Status bodies turned into the
typed exceptions of ``client.errors`` at this one boundary, and transport
failures (refused, reset, timed out) become ``ConnectionFailed``.

Two clients with the same methods: ``Client`` (sync, one ``httpx.Client``
whose connection pool keeps connections alive; docs/design.md measured that
reusing connections is what makes hot paths such as binds and status writes
fast) and ``AsyncClient`` (``httpx.AsyncClient``). The verbs are written once
in ``_Verbs``: each builds a ``_Request`` and hands it to ``_send``, which the
sync client runs to a dict and the async client returns as an awaitable, so
``await async_client.get(...)`` and ``client.get(...)`` never drift apart.
Only the loops that need to wait between requests (``list_all``, ``watch``)
are written twice.

One write path: the per-pod hot writes (``HOT_WRITES``: binds, ``pods/status``
patches, Event creates and count patches) are what the scheduler and the
kubelet send per pod, and the sync ``Client`` sends them over its own
``client.lean.LeanTransport`` (about 0.15 ms of client CPU per request instead
of httpx's 1.5 ms, measured; see that module) with the very request the
verb built, so no caller picks a writer. Their bodies come from
``client.bodies``. ``Writer`` is the protocol of those verbs, for the seams
(binder, event sink) that take "something that writes".

Namespaces: for a namespaced resource an object-level verb uses the explicit
``namespace`` argument, else the object's ``metadata.namespace``, else the
kubeconfig context's namespace; ``list``/``watch`` with no namespace span all
namespaces, as in Kubernetes.

A watch is an iterator of ``(type, object)`` pairs read from the
newline-delimited JSON stream; ERROR events are yielded as they come (their
object is a Status: ``errors.error_from_status`` turns it into an exception,
and code 410 means "relist"). The sync ``Watch`` can be closed from another
thread: it shuts the socket down, which wakes a reader blocked in ``recv``
at once, so informers stop promptly.
"""
from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator, Protocol

import httpx
import orjson

from api import resources as R
from api.resources import ResourceType
from client import bodies
from client.errors import ApiError, ConnectionFailed, Gone, error_from_response
from client.kubeconfig import Config, load_config, ssl_context
from client.lean import LeanTransport

USER_AGENT = "pocketkube-client/0.1"
DEFAULT_PAGE_SIZE = 500

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "json": "application/json-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
DEFAULT_FIELD_MANAGER = "pocketkube"

# (resource, subresource) of the writes sent over the lean transport.
HOT_WRITES = frozenset({(R.PODS, "binding"), (R.PODS, "status"), (R.EVENTS, None)})


class Writer(Protocol):
    """The write verbs the components' hot paths use; ``Client`` implements them (and ``FakeClient``s in tests)."""

    def create(self, rt: ResourceType, obj: dict, namespace: str | None = None) -> dict: ...

    def patch(self, rt: ResourceType, name: str, patch: Any, namespace: str | None = None, *,
              patch_type: str = "merge", subresource: str | None = None) -> dict: ...

    def patch_status(self, rt: ResourceType, name: str, status: dict, namespace: str | None = None, *,
                     patch_type: str = "merge") -> dict: ...

    def bind(self, pod_name: str, namespace: str, node_name: str, *, uid: str | None = None) -> dict: ...

    def create_event(self, obj: dict, reason: str, message: str, *, type: str = "Normal",
                     component: str = DEFAULT_FIELD_MANAGER, host: str | None = None,
                     action: str | None = None, rt: ResourceType | None = None,
                     namespace: str | None = None) -> dict: ...


@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    content_type: str | None = None
    headers: dict[str, str] | None = None
    raw: bool = False  # return the body bytes instead of parsed JSON
    hot: bool = False  # one of HOT_WRITES: the sync client sends it over its lean transport


def _params(**kwargs: Any) -> dict[str, str]:
    """Query parameters with None dropped and booleans spelled as Kubernetes does."""
    out: dict[str, str] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[key] = str(value)
    return out


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _ssl_verify(config: Config) -> ssl.SSLContext | bool:
    """The TLS settings for httpx: an SSLContext built from the kubeconfig."""
    return ssl_context(config) or True


def _transport_error(method: str, url: str, exc: Exception) -> ConnectionFailed:
    detail = str(exc) or type(exc).__name__
    return ConnectionFailed(f"{method} {url}: cannot reach the API server: {detail}")


def _decode(resp: httpx.Response, req: _Request) -> Any:
    if resp.status_code >= 300:
        raise error_from_response(resp.status_code, resp.content, resp.headers.get("content-type"))
    if req.raw:
        return resp.content
    if not resp.content:
        return {}
    try:
        return orjson.loads(resp.content)
    except orjson.JSONDecodeError as e:
        raise ApiError(f"{req.method} {req.path}: response is not JSON: {resp.content[:200]!r}",
                       code=resp.status_code, reason="InvalidResponse") from e


class _LineDecoder:
    """Splits a byte stream into watch events, however the chunks fall."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[str, dict]]:
        self._buf += chunk
        if b"\n" not in chunk:
            return []
        *lines, rest = self._buf.split(b"\n")
        self._buf = bytearray(rest)
        return [_parse_event(line) for line in lines if line.strip()]

    def flush(self) -> list[tuple[str, dict]]:
        """The last line if it arrived whole without a newline; a truncated one is dropped."""
        rest, self._buf = bytes(self._buf), bytearray()
        if not rest.strip():
            return []
        try:
            return [_parse_event(rest)]
        except ApiError:
            return []


def _parse_event(line: bytes) -> tuple[str, dict]:
    try:
        event = orjson.loads(line)
        return event["type"], event.get("object") or {}
    except (orjson.JSONDecodeError, KeyError, TypeError) as e:
        raise ApiError(f"malformed watch event: {line[:200]!r}", reason="MalformedWatchEvent") from e


class _Verbs:
    """The verbs shared by Client and AsyncClient; ``_send`` does the I/O."""

    def __init__(self, config: Config | None, server: str | None, token: str | None, timeout: float,
                 user_agent: str = USER_AGENT):
        if config is None:
            config = load_config(server=server, token=token)
        elif server or token:
            config = Config(**{**config.__dict__,
                               "server": server or config.server, "token": token or config.token})
        self.config = config
        self.server = config.server.rstrip("/")
        self.namespace = config.namespace or "default"
        self.timeout = timeout
        self.user_agent = user_agent
        headers = {"Accept": "application/json", "User-Agent": user_agent}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._headers = headers

    def _send(self, req: _Request) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # ------------------------------------------------------------- helpers
    def _ns(self, rt: ResourceType, namespace: str | None, obj: dict | None = None) -> str | None:
        """The namespace an object-level verb acts in (None for cluster-scoped)."""
        if not rt.namespaced:
            return None
        if namespace:
            return namespace
        if obj is not None:
            ns = (obj.get("metadata") or {}).get("namespace")
            if ns:
                return ns
        return self.namespace

    @staticmethod
    def _name(obj: dict) -> str:
        name = (obj.get("metadata") or {}).get("name")
        if not name:
            raise ValueError("object has no metadata.name")
        return name

    def _list_request(self, rt: ResourceType, namespace: str | None, *, label_selector=None,
                      field_selector=None, limit=None, continue_=None, resource_version=None) -> _Request:
        return _Request("GET", rt.collection_path(namespace), _params(
            labelSelector=label_selector or None, fieldSelector=field_selector or None,
            limit=limit, resourceVersion=resource_version,
            **{"continue": continue_ or None},
        ))

    def _watch_request(self, rt: ResourceType, namespace: str | None, resource_version, label_selector,
                       field_selector, timeout_seconds, allow_bookmarks) -> tuple[_Request, httpx.Timeout]:
        params = _params(
            watch="1", resourceVersion=resource_version or None,
            labelSelector=label_selector or None, fieldSelector=field_selector or None,
            allowWatchBookmarks=True if allow_bookmarks else None,
            timeoutSeconds=int(timeout_seconds) if timeout_seconds is not None else None,
        )
        # The stream is quiet between events: the read timeout must outlast the
        # server-side timeoutSeconds, or be unbounded when there is none.
        read = None if timeout_seconds is None else timeout_seconds + max(self.timeout, 5.0)
        return _Request("GET", rt.collection_path(namespace), params), httpx.Timeout(self.timeout, read=read)

    def _headers_for(self, req: _Request) -> dict[str, str]:
        headers = dict(self._headers)
        if req.content_type:
            headers["Content-Type"] = req.content_type
        if req.headers:
            headers.update(req.headers)
        return headers

    # --------------------------------------------------------------- verbs
    def request(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
                content: bytes | None = None, content_type: str | None = None,
                headers: dict | None = None, raw: bool = False) -> Any:
        """Any request: ``body`` is JSON-encoded, ``content`` sent as is; returns parsed JSON
        (``{}`` for an empty body) or, with ``raw=True``, the body bytes."""
        if body is not None:
            content = _json(body)
            content_type = content_type or "application/json"
        return self._send(_Request(method.upper(), path, _params(**(params or {})), content,
                                   content_type, headers, raw))

    def get(self, rt: ResourceType, name: str, namespace: str | None = None) -> dict:
        return self._send(_Request("GET", rt.object_path(name, self._ns(rt, namespace))))

    def list(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
             field_selector: str | None = None, limit: int | None = None, continue_: str | None = None,
             resource_version: str | None = None) -> dict:
        """One List object (one page when ``limit`` is set; follow ``metadata.continue``)."""
        return self._send(self._list_request(
            rt, namespace, label_selector=label_selector, field_selector=field_selector,
            limit=limit, continue_=continue_, resource_version=resource_version))

    def create(self, rt: ResourceType, obj: dict, namespace: str | None = None, *,
               field_manager: str | None = None) -> dict:
        path = rt.collection_path(self._ns(rt, namespace, obj))
        return self._send(_Request("POST", path, _params(fieldManager=field_manager), _json(obj),
                                   "application/json", hot=(rt, None) in HOT_WRITES))

    def update(self, rt: ResourceType, obj: dict, namespace: str | None = None,
               subresource: str | None = None) -> dict:
        """PUT the whole object; its ``metadata.resourceVersion`` makes it compare-and-swap."""
        path = rt.object_path(self._name(obj), self._ns(rt, namespace, obj), subresource)
        return self._send(_Request("PUT", path, {}, _json(obj), "application/json"))

    def update_status(self, rt: ResourceType, obj: dict, namespace: str | None = None) -> dict:
        return self.update(rt, obj, namespace, subresource="status")

    def patch(self, rt: ResourceType, name: str, patch: Any, namespace: str | None = None, *,
              patch_type: str = "merge", subresource: str | None = None,
              field_manager: str | None = None, force: bool | None = None) -> dict:
        """PATCH with ``patch_type`` merge | json | strategic | apply.

        ``patch`` is a dict (or a list of operations for a JSON patch), or
        str/bytes sent unchanged. Server-side apply needs a field manager, so
        it defaults to "pocketkube" for ``apply``.
        """
        try:
            content_type = PATCH_CONTENT_TYPES[patch_type]
        except KeyError:
            raise ValueError(f"patch_type must be one of {sorted(PATCH_CONTENT_TYPES)}, not {patch_type!r}") from None
        if patch_type == "apply" and not field_manager:
            field_manager = DEFAULT_FIELD_MANAGER
        if isinstance(patch, str):
            content = patch.encode()
        elif isinstance(patch, (bytes, bytearray)):
            content = bytes(patch)
        else:
            content = _json(patch)
        path = rt.object_path(name, self._ns(rt, namespace), subresource)
        return self._send(_Request("PATCH", path, _params(fieldManager=field_manager, force=force),
                                   content, content_type, hot=(rt, subresource) in HOT_WRITES))

    def patch_status(self, rt: ResourceType, name: str, status: dict, namespace: str | None = None, *,
                     patch_type: str = "merge") -> dict:
        """PATCH the ``status`` subresource with ``{"status": status}`` (a merge, or a strategic, patch)."""
        return self.patch(rt, name, bodies.status_patch(status), namespace, patch_type=patch_type,
                          subresource="status")

    def delete(self, rt: ResourceType, name: str, namespace: str | None = None, *,
               grace_period_seconds: int | None = None, propagation_policy: str | None = None,
               preconditions: dict | None = None) -> dict:
        """DELETE; returns what the server answers (the object or a Success Status)."""
        options: dict[str, Any] = {}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        if preconditions:
            options["preconditions"] = preconditions
        content = None
        if options:
            content = _json({"kind": "DeleteOptions", "apiVersion": "v1", **options})
        path = rt.object_path(name, self._ns(rt, namespace))
        return self._send(_Request("DELETE", path, {}, content, "application/json" if content else None))

    def delete_collection(self, rt: ResourceType, namespace: str | None = None,
                          label_selector: str | None = None, field_selector: str | None = None) -> dict:
        path = rt.collection_path(self._ns(rt, namespace))
        return self._send(_Request("DELETE", path, _params(
            labelSelector=label_selector or None, fieldSelector=field_selector or None)))

    def bind(self, pod_name: str, namespace: str, node_name: str, *, uid: str | None = None) -> dict:
        """POST pods/{name}/binding: the scheduler's one write that places a pod.

        The server answers 409 Conflict when the pod is already bound; ``uid``
        guards against binding a pod recreated under the same name.
        """
        path = R.PODS.object_path(pod_name, namespace, "binding")
        return self._send(_Request("POST", path, {}, _json(bodies.binding(pod_name, namespace, node_name, uid)),
                                   "application/json", hot=True))

    def create_event(self, obj: dict, reason: str, message: str, *, type: str = "Normal",
                     component: str = DEFAULT_FIELD_MANAGER, host: str | None = None,
                     action: str | None = None, rt: ResourceType | None = None,
                     namespace: str | None = None) -> dict:
        """Create a core/v1 Event about ``obj`` (what ``kubectl describe`` shows) at once, unaggregated;
        components record theirs through ``client.events.EventRecorder``."""
        event = bodies.event_about(obj, reason, message, type=type, component=component, host=host,
                                   action=action, rt=rt, namespace=namespace)
        return self.create(R.EVENTS, event)


def _fill_type_meta(items: list[dict], rt: ResourceType) -> list[dict]:
    """List items come without kind/apiVersion on the wire; put them back."""
    for item in items:
        if "kind" not in item:
            item["kind"] = rt.kind
        if "apiVersion" not in item:
            item["apiVersion"] = rt.api_version
    return items


class Client(_Verbs):
    """Synchronous client: one keep-alive connection pool, safe to share between threads."""

    def __init__(self, config: Config | None = None, *, server: str | None = None, token: str | None = None,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None,
                 user_agent: str = USER_AGENT, lean: bool | None = None):
        """``lean`` (default: unless a custom httpx ``transport`` is given) sends ``HOT_WRITES`` over a
        ``LeanTransport``; with ``lean=False`` every request goes through httpx."""
        super().__init__(config, server, token, timeout, user_agent)
        if lean is None:
            lean = transport is None
        tls = ssl_context(self.config)
        self._lean = LeanTransport(self.config, timeout=timeout, user_agent=user_agent, tls=tls) if lean else None
        self._http = httpx.Client(
            base_url=self.server,
            timeout=timeout,
            verify=tls or True,
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0),
        )

    def _send(self, req: _Request) -> Any:
        if req.hot and self._lean is not None:
            return self._lean.send(req.method, req.path, req.params, req.content, req.content_type)
        try:
            resp = self._http.request(req.method, req.path, params=req.params or None,
                                      content=req.content, headers=self._headers_for(req))
        except httpx.TransportError as e:
            raise _transport_error(req.method, self.server + req.path, e) from e
        return _decode(resp, req)

    def list_all(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
                 field_selector: str | None = None, page_size: int | None = DEFAULT_PAGE_SIZE,
                 resource_version: str | None = None) -> tuple[list[dict], str]:
        """Every item, following ``metadata.continue``; returns ``(items, resourceVersion)``.

        If a continue token expires mid-way (410), it falls back to one
        unpaginated list, like client-go's pager.
        """
        items: list[dict] = []
        token: str | None = None
        while True:
            try:
                page = self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector,
                                 limit=page_size, continue_=token,
                                 resource_version=None if token else resource_version)
            except Gone:
                if token is None:
                    raise
                page = self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector)
                md = page.get("metadata") or {}
                return _fill_type_meta(page.get("items") or [], rt), md.get("resourceVersion", "")
            items.extend(page.get("items") or [])
            md = page.get("metadata") or {}
            token = md.get("continue") or None
            if not token:
                return _fill_type_meta(items, rt), md.get("resourceVersion", "")

    def watch(self, rt: ResourceType, namespace: str | None = None, *, resource_version: str | None = None,
              label_selector: str | None = None, field_selector: str | None = None,
              timeout_seconds: int | None = None, allow_bookmarks: bool = True) -> "Watch":
        """Open a watch; iterate the result for ``(type, object)``; ``close()`` it from any thread.

        The request is sent on the first ``next()``; HTTP errors (410 Gone for
        a compacted resourceVersion) are raised from there.
        """
        req, timeout = self._watch_request(rt, namespace, resource_version, label_selector,
                                           field_selector, timeout_seconds, allow_bookmarks)
        return Watch(self, req, timeout)

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Watch:
    """A streaming watch response as an iterator of ``(type, object)`` pairs.

    ``close()`` may be called from any thread: it marks the watch closed and
    shuts the socket down so a reader blocked waiting for the next event
    returns at once; the iteration then simply ends. Also a context manager.
    """

    def __init__(self, client: Client, req: _Request, timeout: httpx.Timeout):
        self._client = client
        self._req = req
        self._timeout = timeout
        self._lock = threading.Lock()
        self._closed = False
        self._response: httpx.Response | None = None
        self._events = self._generate()

    @property
    def closed(self) -> bool:
        return self._closed

    def __iter__(self) -> "Watch":
        return self

    def __next__(self) -> tuple[str, dict]:
        return next(self._events)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            response = self._response
        if response is not None:
            _shutdown_socket(response)
        if not self._events.gi_running:
            try:
                self._events.close()
            except ValueError:  # started running in another thread meanwhile; the shutdown ends it
                pass

    def _generate(self) -> Iterator[tuple[str, dict]]:
        client, req = self._client, self._req
        if self._closed:
            return
        try:
            with client._http.stream(req.method, req.path, params=req.params, headers=client._headers_for(req),
                                     timeout=self._timeout) as resp:
                with self._lock:
                    self._response = resp
                    if self._closed:
                        return
                if resp.status_code >= 300:
                    resp.read()
                    raise error_from_response(resp.status_code, resp.content, resp.headers.get("content-type"))
                decoder = _LineDecoder()
                for chunk in resp.iter_bytes():
                    yield from decoder.feed(chunk)
                yield from decoder.flush()
        except httpx.TransportError as e:
            if self._closed:
                return
            raise _transport_error(req.method, client.server + req.path, e) from e
        finally:
            with self._lock:
                self._response = None


def _shutdown_socket(response: httpx.Response) -> None:
    """Wake a thread blocked reading ``response`` (close() alone does not on Linux)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class AsyncClient(_Verbs):
    """Asyncio client with the same verbs; each returns an awaitable."""

    def __init__(self, config: Config | None = None, *, server: str | None = None, token: str | None = None,
                 timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None,
                 user_agent: str = USER_AGENT):
        super().__init__(config, server, token, timeout, user_agent)
        self._http = httpx.AsyncClient(
            base_url=self.server,
            timeout=timeout,
            verify=_ssl_verify(self.config),
            transport=transport,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30.0),
        )

    async def _send(self, req: _Request) -> Any:
        try:
            resp = await self._http.request(req.method, req.path, params=req.params or None,
                                            content=req.content, headers=self._headers_for(req))
        except httpx.TransportError as e:
            raise _transport_error(req.method, self.server + req.path, e) from e
        return _decode(resp, req)

    async def list_all(self, rt: ResourceType, namespace: str | None = None, *, label_selector: str | None = None,
                       field_selector: str | None = None, page_size: int | None = DEFAULT_PAGE_SIZE,
                       resource_version: str | None = None) -> tuple[list[dict], str]:
        """Async ``Client.list_all``."""
        items: list[dict] = []
        token: str | None = None
        while True:
            try:
                page = await self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector,
                                       limit=page_size, continue_=token,
                                       resource_version=None if token else resource_version)
            except Gone:
                if token is None:
                    raise
                page = await self.list(rt, namespace, label_selector=label_selector, field_selector=field_selector)
                md = page.get("metadata") or {}
                return _fill_type_meta(page.get("items") or [], rt), md.get("resourceVersion", "")
            items.extend(page.get("items") or [])
            md = page.get("metadata") or {}
            token = md.get("continue") or None
            if not token:
                return _fill_type_meta(items, rt), md.get("resourceVersion", "")

    async def watch(self, rt: ResourceType, namespace: str | None = None, *, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, dict]]:
        """Async generator of ``(type, object)``; stop it with ``aclose()`` or task cancellation."""
        req, timeout = self._watch_request(rt, namespace, resource_version, label_selector,
                                           field_selector, timeout_seconds, allow_bookmarks)
        try:
            async with self._http.stream(req.method, req.path, params=req.params,
                                         headers=self._headers_for(req), timeout=timeout) as resp:
                if resp.status_code >= 300:
                    await resp.aread()
                    raise error_from_response(resp.status_code, resp.content, resp.headers.get("content-type"))
                decoder = _LineDecoder()
                async for chunk in resp.aiter_bytes():
                    for event in decoder.feed(chunk):
                        yield event
                for event in decoder.flush():
                    yield event
        except httpx.TransportError as e:
            raise _transport_error(req.method, self.server + req.path, e) from e

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


__all__ = ["Client", "AsyncClient", "Watch", "Writer", "HOT_WRITES", "USER_AGENT", "PATCH_CONTENT_TYPES"]
