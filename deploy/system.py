"""The one seam between `pocketkube up/down/status` and the machine.

Everything the launcher does to or learns from the machine goes through a
``System``: running a command (``ip``, ``iptables``, ``nsenter``), looking a
tool up on PATH, the effective uid, the IPv4 addresses and routes already in
use, whether a TCP port is free, whether a PID is alive and still one of
ours, and sending it a signal. ``RealSystem`` does it for real;
``FakeSystem`` records commands and answers from tables, so the prerequisite
checks, the network plan and the state handling are unit-tested without
root (DESIGN.md, style rule 8).

"Still one of ours": a PID file can outlive its process and the PID be
reused, so a process counts as alive only when ``/proc/PID/cmdline``
mentions the cluster's data directory (every process `up` starts carries it
in its flags, and so does the kubelet's runtime daemon). Nothing is ever
signalled that fails this test.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field


@dataclass
class Result:
    returncode: int
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CommandError(RuntimeError):
    def __init__(self, argv: list[str], result: Result):
        self.argv = argv
        self.result = result
        super().__init__(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip() or result.stdout.strip()}")


class System:
    """Interface (the real one below; the fake for unit tests after it)."""

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0, input: str | None = None) -> Result:
        raise NotImplementedError

    def which(self, tool: str) -> str | None:
        raise NotImplementedError

    def geteuid(self) -> int:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def used_networks(self) -> list[ipaddress.IPv4Network]:
        """IPv4 networks the machine's own namespace has an address or a route in."""
        raise NotImplementedError

    def port_in_use(self, address: str, port: int) -> bool:
        raise NotImplementedError

    def cmdline(self, pid: int) -> str | None:
        """The process's command line joined by spaces, or None when there is no such process."""
        raise NotImplementedError

    def kill(self, pid: int, sig: int) -> None:
        raise NotImplementedError

    # shared logic on top of the primitives
    def alive(self, pid: int | None, marker: str) -> bool:
        if not pid or pid <= 1:
            return False
        cmd = self.cmdline(pid)
        return cmd is not None and marker in cmd


class RealSystem(System):
    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0, input: str | None = None) -> Result:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
            r = Result(p.returncode, p.stdout, p.stderr)
        except FileNotFoundError as e:
            r = Result(127, "", str(e))
        except subprocess.TimeoutExpired:
            r = Result(124, "", f"timed out after {timeout}s")
        if check and not r.ok:
            raise CommandError(argv, r)
        return r

    def which(self, tool: str) -> str | None:
        return shutil.which(tool)

    def geteuid(self) -> int:
        return os.geteuid()

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def used_networks(self) -> list[ipaddress.IPv4Network]:
        nets: list[ipaddress.IPv4Network] = []
        for args in (["ip", "-4", "-j", "addr"], ["ip", "-4", "-j", "route", "show", "table", "all"]):
            r = self.run(args, check=False)
            if not r.ok:
                continue
            try:
                data = json.loads(r.stdout or "[]")
            except ValueError:
                continue
            nets += parse_used_networks(data)
        return nets

    def port_in_use(self, address: str, port: int) -> bool:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((address, port))
            except OSError as e:
                return e.errno in (errno.EADDRINUSE, errno.EACCES)
        return False

    def cmdline(self, pid: int) -> str | None:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:
            return None
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return None          # a zombie is dead for our purposes
        except (OSError, IndexError):
            return None
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()

    def kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def parse_used_networks(items: list[dict]) -> list[ipaddress.IPv4Network]:
    """Networks from ``ip -j addr`` / ``ip -j route`` output (addresses with their prefix, route destinations)."""
    nets = []
    for item in items:
        for a in item.get("addr_info") or []:
            try:
                nets.append(ipaddress.ip_network(f"{a['local']}/{a.get('prefixlen', 32)}", strict=False))
            except (KeyError, ValueError):
                pass
        dst = item.get("dst")
        if dst and dst != "default":
            try:
                nets.append(ipaddress.ip_network(dst if "/" in dst else dst + "/32", strict=False))
            except ValueError:
                pass
    return [n for n in nets if n.version == 4 and not n.is_loopback and not n.is_multicast and
            not (n.prefixlen == 32 and n.network_address.is_loopback)]


@dataclass
class FakeSystem(System):
    """In-memory stand-in: records every command; answers from the fields below."""

    euid: int = 0
    tools: set[str] = field(default_factory=lambda: {"ip", "nsenter", "iptables", "iptables-restore",
                                                      "iptables-save", "unshare", "conntrack", "openssl"})
    paths: set[str] = field(default_factory=lambda: {"/proc/self/ns/net"})
    networks: list[str] = field(default_factory=list)
    busy_ports: set[tuple[str, int]] = field(default_factory=set)
    procs: dict[int, str] = field(default_factory=dict)
    responses: dict[str, Result] = field(default_factory=dict)   # command prefix -> result
    existing: set[str] = field(default_factory=set)   # check commands (link show, iptables -C) that succeed
    commands: list[list[str]] = field(default_factory=list)
    signals: list[tuple[int, int]] = field(default_factory=list)

    def run(self, argv: list[str], check: bool = True, timeout: float = 30.0, input: str | None = None) -> Result:
        self.commands.append(list(argv))
        line = " ".join(argv)
        r = None
        for prefix in sorted(self.responses, key=len, reverse=True):
            if line.startswith(prefix):
                r = self.responses[prefix]
                break
        if r is None:
            if " link show " in line or " -C " in line:      # existence checks: nothing exists unless listed
                r = Result(0) if line in self.existing else Result(1)
            elif " route show exact " in line:
                r = Result(0, "[]")
            else:
                r = Result(0)
        if check and not r.ok:
            raise CommandError(argv, r)
        return r

    def which(self, tool: str) -> str | None:
        return f"/usr/bin/{tool}" if tool in self.tools else None

    def geteuid(self) -> int:
        return self.euid

    def exists(self, path: str) -> bool:
        return path in self.paths

    def used_networks(self) -> list[ipaddress.IPv4Network]:
        return [ipaddress.ip_network(n, strict=False) for n in self.networks]

    def port_in_use(self, address: str, port: int) -> bool:
        return (address, port) in self.busy_ports or ("0.0.0.0", port) in self.busy_ports

    def cmdline(self, pid: int) -> str | None:
        return self.procs.get(pid)

    def kill(self, pid: int, sig: int) -> None:
        self.signals.append((pid, sig))
        if sig in (signal.SIGTERM, signal.SIGKILL):
            self.procs.pop(pid, None)

    def lines(self) -> list[str]:
        return [" ".join(c) for c in self.commands]
