"""Pumping a process's pipes and pty from an event loop: non-blocking reads and the terminal size.

The runtime pumps its containers' stdout/stderr into log files and the
kubelet's server pumps an exec session's descriptors (handed over by the
runtime) to a WebSocket; both wake on readiness and must tell "no data yet"
from "the other end is gone", which a pty reports as EIO rather than EOF.
"""
from __future__ import annotations

import fcntl
import os
import struct
import termios


def read_ready(fd: int) -> bytes | None:
    """What a non-blocking pipe or pty has: data, b"" at the end (EOF, or EIO on a pty whose
    process is gone), None when nothing is there yet (a spurious wake-up)."""
    try:
        return os.read(fd, 65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """The terminal size of the pty ``fd`` (TIOCSWINSZ): what a resize message of exec asks for."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
