"""Requests the shared client has no verb for: streamed bodies, Table watches, WebSockets.

``client.Client`` covers request/response verbs and plain-object watches.
pkctl additionally needs (1) a streamed ``GET`` for ``logs -f``, (2) a watch
whose events are server-side Tables (``get -w``: the watch must carry the
Table ``Accept`` header, which ``Client.watch`` cannot set) and (3) the
``pods/exec`` WebSocket. This module is the one place that reaches into the
client for them -- its httpx pool (``_http``) and auth headers
(``_headers``) -- so the same TLS settings, token and base URL apply, and
every transport failure still becomes the client's ``ConnectionFailed`` and
every error answer the client's typed ``ApiError``.
"""
from __future__ import annotations

import json
from typing import Any, Iterator
from urllib.parse import urlencode

import httpx

from api.resources import ResourceType
from client.errors import ApiError, ConnectionFailed, error_from_response
from client.kubeconfig import ssl_context

TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


def _http(client) -> httpx.Client:
    return client._http  # the client's pool: base URL, TLS and keep-alive already set up


def _headers(client, accept: str) -> dict[str, str]:
    headers = dict(client._headers)
    headers["Accept"] = accept
    return headers


def _params(params: dict[str, Any] | list[tuple[str, str]]) -> list[tuple[str, str]]:
    items = params.items() if isinstance(params, dict) else params
    out = []
    for k, v in items:
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        out.append((k, str(v)))
    return out


def _failed(client, path: str, e: Exception) -> ConnectionFailed:
    return ConnectionFailed(f"GET {client.server}{path}: cannot reach the API server: {e or type(e).__name__}")


def stream_get(client, path: str, params: dict[str, Any], accept: str = "*/*",
               read_timeout: float | None = None) -> Iterator[bytes]:
    """Yield the body of a GET as it arrives (``pods/log?follow=true``)."""
    try:
        with _http(client).stream("GET", path, params=_params(params), headers=_headers(client, accept),
                                  timeout=httpx.Timeout(client.timeout, read=read_timeout)) as resp:
            if resp.status_code >= 300:
                resp.read()
                raise error_from_response(resp.status_code, resp.content, resp.headers.get("content-type"))
            yield from resp.iter_raw()
    except httpx.TransportError as e:
        raise _failed(client, path, e) from e


def watch_tables(client, rt: ResourceType, namespace: str | None, *, resource_version: str | None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 timeout_seconds: int | None = None) -> Iterator[tuple[str, dict]]:
    """A watch whose events carry one-row Tables: ``(type, table_or_status)`` pairs."""
    params = {"watch": "true", "resourceVersion": resource_version or None,
              "labelSelector": label_selector or None, "fieldSelector": field_selector or None,
              "timeoutSeconds": timeout_seconds}
    read = None if timeout_seconds is None else timeout_seconds + max(client.timeout, 5.0)
    path = rt.collection_path(namespace)
    buf = b""
    for chunk in stream_get(client, path, params, TABLE_ACCEPT, read_timeout=read):
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield _event(line)
    if buf.strip():
        try:
            yield _event(buf)
        except ApiError:
            pass  # a truncated last line: the stream was cut


def _event(line: bytes) -> tuple[str, dict]:
    try:
        ev = json.loads(line)
        return ev["type"], ev.get("object") or {}
    except (ValueError, KeyError, TypeError):
        raise ApiError(f"malformed watch event: {line[:200]!r}", reason="MalformedWatchEvent") from None


# ------------------------------------------------------------------ WebSocket
def websocket_url(server: str, path: str, params: list[tuple[str, str]]) -> str:
    base = server.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    query = urlencode(_params(params))
    return f"{base}{path}?{query}" if query else f"{base}{path}"


def websocket_connect(client, path: str, params: list[tuple[str, str]], subprotocols: list[str]):
    """Open a WebSocket to the API server; a non-101 answer raises the typed ApiError of its Status."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    url = websocket_url(client.server, path, params)
    headers = {k: v for k, v in client._headers.items() if k.lower() == "authorization"}
    try:
        return connect(url, subprotocols=subprotocols, additional_headers=headers,
                       ssl=ssl_context(client.config), open_timeout=client.timeout, compression=None,
                       max_size=None, proxy=None, ping_interval=None, user_agent_header="pkctl")
    except InvalidStatus as e:
        resp = e.response
        body = resp.body or b""
        if not body.strip():
            # No Status to explain it (e.g. a server whose router has no WebSocket route here).
            body = (f"the server refused the WebSocket upgrade for {path} with HTTP {resp.status_code} "
                    "and no explanation: it may not support this subresource over WebSocket").encode()
        raise error_from_response(resp.status_code, body, "text/plain") from None
    except (OSError, InvalidHandshake, TimeoutError) as e:
        raise ConnectionFailed(f"GET {url}: cannot reach the API server: {e}") from e
