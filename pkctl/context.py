"""Per-invocation state every command needs: the client, discovery, namespace, streams.

Built once in ``main`` from the global flags and handed to the command.
The client and the discovery documents are created lazily, so commands that
need no server (``version --client``, ``run --dry-run=client``) never read a
kubeconfig, and a command makes its discovery requests at most once.
Streams are attributes, not ``sys.stdout``, so tests can call ``main(argv)``
and capture the output.
"""
from __future__ import annotations

import sys
from typing import IO

from client.kubeconfig import load_config
from client.rest import Client

from .discovery import Discovery

DEFAULT_TIMEOUT = 30.0


class Context:
    def __init__(self, args, out: IO[str] | None = None, err: IO[str] | None = None,
                 stdin: IO[str] | None = None):
        self.args = args
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.stdin = stdin or sys.stdin
        self._client: Client | None = None
        self._discovery: Discovery | None = None
        self.show_events = True  # describe --show-events

    # ------------------------------------------------------------ global flags
    def flag(self, name: str, default=None):
        return getattr(self.args, name, default)

    @property
    def request_timeout(self) -> float | None:
        """``--request-timeout``: the HTTP timeout, and the server-side bound of a watch."""
        value = self.flag("request_timeout")
        return value if value else None

    # ------------------------------------------------------------ server side
    @property
    def client(self) -> Client:
        if self._client is None:
            config = load_config(self.flag("kubeconfig"), self.flag("server"), self.flag("token"),
                                 self.flag("context"))
            self._client = Client(config, timeout=self.request_timeout or DEFAULT_TIMEOUT)
        return self._client

    @property
    def server(self) -> str:
        if self._client is not None:
            return self._client.server
        return self.flag("server") or ""

    @property
    def discovery(self) -> Discovery:
        if self._discovery is None:
            self._discovery = Discovery(self.client)
        return self._discovery

    @property
    def namespace(self) -> str:
        """``-n``, else the kubeconfig context's namespace, else ``default``."""
        return self.flag("namespace") or self.client.namespace or "default"

    @property
    def namespace_explicit(self) -> bool:
        return bool(self.flag("namespace"))

    # ------------------------------------------------------------ output
    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
