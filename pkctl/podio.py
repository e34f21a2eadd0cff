"""``pkctl logs`` and ``pkctl exec``: the two commands that stream bytes from a container.

Both go to the API server, which relays to the pod's kubelet (docs/design.md's
seam), never to a node directly, and both follow the wire contract of
docs/reference/KUBECTL_COMPAT.md sections 9-10:

* logs: ``GET pods/NAME/log`` with ``container``, ``follow``, ``previous``,
  ``tailLines``, ``timestamps``, ``sinceSeconds``, ``limitBytes``; the body is
  raw bytes, streamed as it arrives with ``-f``.
* exec: a WebSocket to ``pods/NAME/exec?command=...&container=...&stdout=true
  &stderr=true[&stdin=true][&tty=true]`` with subprotocol
  ``v5.channel.k8s.io``. Every binary message starts with a channel byte:
  0 stdin, 1 stdout, 2 stderr, 3 the final Status (JSON), 4 terminal resize;
  ``[255, 0]`` tells the server that stdin reached EOF (v5 only). The exit
  code comes from the Status: ``Success`` is 0, ``NonZeroExitCode`` carries
  it in ``details.causes[reason=ExitCode].message``.

Before either, the pod is read (a clear NotFound, the container default from
the ``kubectl.kubernetes.io/default-container`` annotation or the first
container), as kubectl does. A server without a node agent answers 503; the
client turns that into ``Error from server (ServiceUnavailable): ...``.
"""
from __future__ import annotations

import json
import os
import shutil
import threading

from client.errors import error_from_status

from . import transport
from .errors import CLIError, ExitCode

DEFAULT_CONTAINER = "kubectl.kubernetes.io/default-container"
EXEC_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


def _pod_name(ctx, arg: str) -> str:
    if "/" in arg:
        kind, _, name = arg.partition("/")
        rt = ctx.discovery.try_resolve(kind)
        if rt is None or rt.kind != "Pod" or rt.group:
            raise CLIError(f"cannot attach to {kind}: only pods are supported (use pod/NAME or NAME)")
        return name
    return arg


def pick_container(ctx, pod: dict, requested: str, quiet: bool = False) -> str:
    if requested:
        return requested
    spec = pod.get("spec") or {}
    names = [c.get("name", "") for c in spec.get("containers") or []]
    if not names:
        raise CLIError(f'pod "{pod["metadata"]["name"]}" has no containers')
    annotated = ((pod.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CONTAINER)
    if annotated and annotated in names:
        return annotated
    if len(names) > 1 and not quiet:
        ctx.warn(f'Defaulted container "{names[0]}" out of: {", ".join(names)}')
    return names[0]


def _write(stream, data: bytes) -> None:
    buf = getattr(stream, "buffer", None)
    if buf is not None:
        buf.write(data)
        buf.flush()
    else:
        stream.write(data.decode("utf-8", "replace"))
        stream.flush()


# ------------------------------------------------------------------ logs
def log_params(args, container: str) -> dict:
    params = {"container": container}
    if args.follow:
        params["follow"] = True
    if args.previous:
        params["previous"] = True
    if args.tail is not None and args.tail >= 0:
        params["tailLines"] = args.tail
    if args.timestamps:
        params["timestamps"] = True
    if args.since:
        params["sinceSeconds"] = max(1, int(args.since))
    if args.limit_bytes:
        params["limitBytes"] = args.limit_bytes
    return params


def run_logs(ctx, args) -> int:
    pods = ctx.discovery.resolve("pods")
    name = _pod_name(ctx, args.pod)
    ns = ctx.namespace
    pod = ctx.client.get(pods, name, ns)
    container = pick_container(ctx, pod, args.container or args.container_arg or "")
    params = log_params(args, container)
    path = pods.object_path(name, ns, "log")
    if args.follow:
        for chunk in transport.stream_get(ctx.client, path, params):
            _write(ctx.out, chunk)
    else:
        data = ctx.client.request("GET", path, params=params, headers={"Accept": "*/*"}, raw=True)
        _write(ctx.out, data)
    return 0


# ------------------------------------------------------------------ exec
def exec_params(command: list[str], container: str, stdin: bool, tty: bool) -> list[tuple[str, str]]:
    params = [("command", c) for c in command]
    params += [("container", container), ("stdout", "true"), ("stderr", "false" if tty else "true")]
    if stdin:
        params.append(("stdin", "true"))
    if tty:
        params.append(("tty", "true"))
    return params


def exit_code_from_status(status: dict | None) -> int:
    """0 for Success (or no status); the remote exit code for NonZeroExitCode; raises otherwise."""
    if not status or status.get("status") == "Success":
        return 0
    if status.get("reason") == "NonZeroExitCode":
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode":
                try:
                    return int(cause.get("message"))
                except (TypeError, ValueError):
                    break
        return 1
    raise error_from_status(status)


class _Terminal:
    """Raw mode for ``-t`` on a real terminal, restored on exit."""

    def __init__(self, stream):
        self.fd = None
        self.saved = None
        try:
            if stream.isatty():
                self.fd = stream.fileno()
        except (AttributeError, ValueError, OSError):
            self.fd = None

    def __enter__(self):
        if self.fd is not None:
            import termios
            import tty
            self.saved = termios.tcgetattr(self.fd)
            tty.setraw(self.fd)
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import termios
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def _stdin_pump(ws, stdin, v5: bool) -> None:
    """Copy stdin to channel 0 until EOF, then send v5's close-stdin frame."""
    fd = None
    try:
        fd = stdin.fileno()
    except (AttributeError, ValueError, OSError):
        fd = None
    try:
        while True:
            if fd is not None:
                data = os.read(fd, 32 * 1024)
            else:
                text = stdin.read(32 * 1024)
                data = text.encode() if isinstance(text, str) else text
            if not data:
                break
            ws.send(bytes([STDIN]) + data)
        if v5:
            ws.send(bytes([CLOSE, STDIN]))
    except Exception:  # noqa: BLE001 - the connection closed under us: the receive loop reports it
        pass


def run_exec(ctx, args) -> int:
    from websockets.exceptions import ConnectionClosed

    command = list(args.after_dashdash or []) or list(args.command_words or [])
    if args.after_dashdash and args.command_words:
        raise CLIError("exec takes the command after --: pkctl exec POD -- COMMAND [ARGS...]")
    if not command:
        raise CLIError("you must specify at least one command for the container")
    pods = ctx.discovery.resolve("pods")
    name = _pod_name(ctx, args.pod)
    ns = ctx.namespace
    pod = ctx.client.get(pods, name, ns)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Succeeded", "Failed"):
        raise CLIError(f"cannot exec into a container in a completed pod; current phase is {phase}")
    container = pick_container(ctx, pod, args.container, args.quiet)
    tty = bool(args.tty)
    if tty and not args.stdin:
        ctx.warn("Unable to use a TTY without -i (--stdin): continuing without one")
        tty = False
    elif tty and _Terminal(ctx.stdin).fd is None:
        ctx.warn("Unable to use a TTY - input is not a terminal or the right kind of file")
        tty = False
    path = pods.object_path(name, ns, "exec")
    ws = transport.websocket_connect(ctx.client, path, exec_params(command, container, args.stdin, tty),
                                     EXEC_PROTOCOLS)
    v5 = ws.subprotocol == "v5.channel.k8s.io"
    status: dict | None = None
    with ws, _Terminal(ctx.stdin if tty else None):
        if tty:
            size = shutil.get_terminal_size((80, 24))
            ws.send(bytes([RESIZE]) + json.dumps({"Width": size.columns, "Height": size.lines}).encode())
        if args.stdin:
            threading.Thread(target=_stdin_pump, args=(ws, ctx.stdin, v5), daemon=True).start()
        try:
            for message in ws:
                data = message.encode() if isinstance(message, str) else message
                if not data:
                    continue
                channel, payload = data[0], data[1:]
                if channel == STDOUT:
                    _write(ctx.out, payload)
                elif channel == STDERR:
                    _write(ctx.err, payload)
                elif channel == ERROR:
                    try:
                        status = json.loads(payload) if payload.strip() else None
                    except ValueError:
                        raise CLIError(f"malformed status from the server: {payload[:200]!r}") from None
        except ConnectionClosed:
            pass
    code = exit_code_from_status(status)
    if code:
        ctx.warn(f"command terminated with exit code {code}")
        raise ExitCode(code)
    return 0
