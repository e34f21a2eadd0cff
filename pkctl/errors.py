"""Turning every failure into the one line kubectl would print.

Commands raise: ``CLIError`` for usage and local problems (printed as
``error: ...``), the client's typed ``ApiError``s for server answers, and
``ConfigError`` for a missing or broken kubeconfig. ``format_error`` is the
only place that knows how each looks on the terminal, so messages stay
consistent across commands; ``main`` calls it at the boundary.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from client.errors import ApiError, ConnectionFailed, Invalid, Unauthorized
from client.kubeconfig import ConfigError


class CLIError(Exception):
    """A user-facing failure that is not a server answer: printed as ``error: <message>``."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ExitCode(Exception):
    """Leave with a given exit code after the message was already printed (exec's remote exit)."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def _refused(exc: BaseException) -> bool:
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionRefusedError) or "refused" in str(cur).lower():
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def host_port(server: str) -> str:
    """``https://127.0.0.1:6443`` -> ``127.0.0.1:6443`` (default ports filled in, as kubectl shows them)."""
    parts = urlsplit(server)
    host = parts.hostname or server
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{host}:{port}"


def connection_message(server: str, exc: BaseException) -> str:
    if _refused(exc):
        return (f"The connection to the server {host_port(server)} was refused - "
                "did you specify the right host or port?")
    detail = str(exc)
    marker = "cannot reach the API server: "
    if marker in detail:
        detail = detail.split(marker, 1)[1]
    return f"Unable to connect to the server: {detail}"


def invalid_message(err: ApiError) -> str:
    """kubectl's text for a 422: ``The Pod "bad" is invalid: spec.containers: Required value``."""
    details = err.details or {}
    causes = details.get("causes") or []
    kind = details.get("kind") or ""
    name = details.get("name") or ""
    if not causes:
        return f"Error from server (Invalid): {err.message}"
    head = f'The {kind} "{name}" is invalid' if (kind or name) else "The request is invalid"
    parts = []
    for c in causes:
        field = c.get("field") or ""
        msg = c.get("message") or c.get("reason") or ""
        parts.append(f"{field}: {msg}" if field else msg)
    return f"{head}: {parts[0]}" if len(parts) == 1 else f"{head}: [{', '.join(parts)}]"


def format_api_error(err: ApiError, server: str = "", context: str = "") -> str:
    """One ApiError as kubectl prints it; ``context`` is e.g. ``error when creating "p.yaml": ``."""
    if isinstance(err, ConnectionFailed):
        return connection_message(server, err)
    if isinstance(err, Unauthorized):
        return f"error: You must be logged in to the server ({err.message or 'Unauthorized'})"
    if isinstance(err, Invalid):
        return invalid_message(err)
    reason = err.reason or ""
    if reason:
        return f"Error from server ({reason}): {context}{err.message}"
    return f"Error from server: {context}{err.message}"


def format_error(exc: BaseException, server: str = "") -> str:
    if isinstance(exc, CLIError):
        return f"error: {exc.message}"
    if isinstance(exc, ApiError):
        return format_api_error(exc, server)
    if isinstance(exc, ConfigError):
        return f"error: {exc}"
    return f"error: {exc}"
