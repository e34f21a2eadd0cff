"""Container logs in the CRI format, written by the runtime and read by the kubelet.

Each line of a container's stdout/stderr becomes one line of its log file::

    2026-11-28T15:12:28.123456789Z stdout F the line
    2026-11-28T15:12:28.123456789Z stderr P first 16 KiB of a longer line

(``F`` full line, ``P`` partial: a line longer than the buffer, or the last
bytes before the stream closed without a newline). This is what
containerd writes under ``/var/log/pods/<ns>_<pod>_<uid>/<container>/<N>.log``
and what the kubelet parses for ``kubectl logs``; keeping the format means the
files are useful to anyone who knows Kubernetes.

Rotation is by size: when the file passes ``max_bytes`` it is renamed to
``<N>.log.1`` (older rotations shift up, at most ``max_files`` kept) and a
new file starts. The reader follows that: it reads the rotated files first,
and while following it reopens the path when the file under it was renamed.

The files are the runtime's declared interface for logs, as in Kubernetes
(the kubelet names the path in ``create_container`` and reads the files
itself; CRI has no log-streaming call): the runtime imports ``LogWriter``,
the kubelet's server the readers ``read_logs``, ``position`` and ``follow``.
Nothing else of the runtime's internals is for the kubelet; everything else
goes through ``kubelet.runtime.client``.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Iterator

MAX_LINE = 16 * 1024


def timestamp() -> str:
    ns = time.time_ns()
    return datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + \
        f".{ns % 1_000_000_000:09d}Z"


class LogWriter:
    """Appends CRI lines to one container's log file; one per container, used from the runtime's loop."""

    def __init__(self, path: str, max_bytes: int = 10 * 1024 * 1024, max_files: int = 2):
        self.path = path
        self.max_bytes = max_bytes
        self.max_files = max_files
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self._f = open(path, "ab", buffering=0)
        self._size = self._f.tell()
        self._pending = {"stdout": b"", "stderr": b""}

    def feed(self, stream: str, data: bytes) -> None:
        """Bytes read from a pipe: write every complete line, keep the rest for the next call."""
        buf = self._pending[stream] + data
        out = []
        ts = None
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            line, buf = buf[:nl], buf[nl + 1:]
            ts = ts or timestamp().encode()
            while len(line) > MAX_LINE:
                out.append(b"%s %s P %s\n" % (ts, stream.encode(), line[:MAX_LINE]))
                line = line[MAX_LINE:]
            out.append(b"%s %s F %s\n" % (ts, stream.encode(), line))
        while len(buf) > MAX_LINE:
            ts = ts or timestamp().encode()
            out.append(b"%s %s P %s\n" % (ts, stream.encode(), buf[:MAX_LINE]))
            buf = buf[MAX_LINE:]
        self._pending[stream] = buf
        if out:
            self._write(b"".join(out))

    def close_stream(self, stream: str) -> None:
        rest = self._pending.get(stream)
        if rest:
            self._pending[stream] = b""
            self._write(b"%s %s P %s\n" % (timestamp().encode(), stream.encode(), rest))

    def _write(self, data: bytes) -> None:
        if self._f is None:
            return
        self._f.write(data)
        self._size += len(data)
        if self._size >= self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._f.close()
        for i in range(self.max_files - 1, 0, -1):
            src = f"{self.path}.{i}"
            if os.path.exists(src):
                if i + 1 >= self.max_files:
                    os.unlink(src)
                else:
                    os.replace(src, f"{self.path}.{i + 1}")
        if self.max_files > 1:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self._f = open(self.path, "ab", buffering=0)
        self._size = 0

    def close(self) -> None:
        for s in ("stdout", "stderr"):
            self.close_stream(s)
        if self._f is not None:
            self._f.close()
            self._f = None


# ------------------------------------------------------------------ reading
def parse_line(raw: bytes) -> tuple[str, str, bool, bytes] | None:
    """(timestamp, stream, full, content) of one CRI line, or None if it is not one."""
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return parts[0].decode(), parts[1].decode(), parts[2] == b"F", content


def _files(path: str) -> list[str]:
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    return list(reversed(rotated)) + ([path] if os.path.exists(path) else [])


def _since_ok(ts: str, since: datetime | None) -> bool:
    if since is None:
        return True
    try:
        t = datetime.strptime(ts[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return True
    return t >= since


def render(entry: tuple[str, str, bool, bytes], timestamps: bool) -> bytes:
    ts, _stream, full, content = entry
    line = content + (b"\n" if full else b"")
    return (ts.encode() + b" " + line) if timestamps else line


def read_logs(path: str, *, tail: int | None = None, timestamps: bool = False, since: datetime | None = None,
              limit_bytes: int | None = None) -> bytes:
    """The log content as ``kubectl logs`` shows it (all rotated files, then the live one)."""
    entries = []
    for fp in _files(path):
        with open(fp, "rb") as f:
            for raw in f:
                e = parse_line(raw)
                if e is not None and _since_ok(e[0], since):
                    entries.append(e)
    if tail is not None:
        # tail counts whole lines: partial entries up to and including a full one (or the end) are one line
        lines: list[list] = [[]]
        for e in entries:
            lines[-1].append(e)
            if e[2]:
                lines.append([])
        if not lines[-1]:
            lines.pop()
        entries = [e for line in (lines[-tail:] if tail > 0 else []) for e in line]
    out = b"".join(render(e, timestamps) for e in entries)
    return out[:limit_bytes] if limit_bytes is not None else out


def position(path: str) -> tuple[int, int | None]:
    """(size, inode) of the live file: where a later ``follow`` starts."""
    try:
        st = os.stat(path)
        return st.st_size, st.st_ino
    except FileNotFoundError:
        return 0, None


def follow(path: str, offset: int, *, timestamps: bool, still_running, poll: float = 0.1,
           stop=lambda: False, start_ino: int | None = None) -> Iterator[bytes]:
    """Yield what is appended to the live file after ``offset`` until ``still_running()`` is false at EOF.

    ``start_ino`` is the inode ``offset`` belongs to (``position()``): if the
    file was rotated before the first read, the rest of the rotated file comes
    first, then the new file from its start.
    """
    f = None
    ino = None
    if start_ino is not None:
        try:
            if os.stat(path).st_ino != start_ino and os.stat(path + ".1").st_ino == start_ino:
                with open(path + ".1", "rb") as old:
                    old.seek(offset)
                    for raw in old:
                        e = parse_line(raw)
                        if e is not None:
                            yield render(e, timestamps)
                offset = 0
        except FileNotFoundError:
            pass
    try:
        while not stop():
            if f is None:
                try:
                    f = open(path, "rb")
                    st = os.fstat(f.fileno())
                    ino = st.st_ino
                    f.seek(min(offset, st.st_size))
                except FileNotFoundError:
                    if not still_running():
                        return
                    time.sleep(poll)
                    continue
            raw = f.readline()
            if raw.endswith(b"\n"):
                e = parse_line(raw)
                if e is not None:
                    yield render(e, timestamps)
                continue
            if raw:
                f.seek(-len(raw), os.SEEK_CUR)
            try:
                rotated = os.stat(path).st_ino != ino
            except FileNotFoundError:
                rotated = True
            if rotated:
                rest = f.read()
                for line in rest.splitlines(keepends=True):
                    e = parse_line(line)
                    if e is not None:
                        yield render(e, timestamps)
                f.close()
                f, offset = None, 0
                continue
            if not still_running():
                return
            time.sleep(poll)
    finally:
        if f is not None:
            f.close()
