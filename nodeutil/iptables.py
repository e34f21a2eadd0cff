"""The packet-filter seams of node agents: running iptables-restore/-save and conntrack.

Everything the service proxy does to the kernel (and what the coming policy
and ingress agents will) goes through two narrow interfaces (docs/design.md
style 8), each with a real implementation and an in-tree fake:

``Runner``      ``restore(payload)`` = one ``iptables-restore --noflush -w``;
                ``save()`` = ``iptables-save`` text (for the full resync that
                must find chains left by an earlier run, and for ``--cleanup``).
``Conntrack``   ``delete_udp_flows(...)`` = ``conntrack -D``: after a UDP
                endpoint goes away its old flows would otherwise keep sending
                datagrams to a dead address for as long as they stay busy.

The real ones run the tools directly (an agent runs in the node's network
namespace, as kube-proxy runs in the host's), or inside a named network
namespace with ``ip netns exec NS`` when given ``netns`` (tests, benchmarks).

``FakeRunner`` applies restore payloads to an in-memory table model that
understands what the agents send (chain declarations flush, ``-A``/``-I``,
``-X``, ``--noflush``), and records every payload, so unit tests can assert
both the resulting state and exactly what was written.
"""
from __future__ import annotations

import logging
import shlex
import subprocess
from typing import Protocol

log = logging.getLogger(__name__)


class IptablesError(Exception):
    """iptables-restore or iptables-save failed; the message carries its stderr."""


class Runner(Protocol):
    def restore(self, payload: str) -> None: ...
    def save(self) -> str: ...


class Conntrack(Protocol):
    def delete_udp_flows(self, *, orig_dst: str | None = None, orig_port_dst: int | None = None,
                         dst_nat: str | None = None) -> None: ...


def _prefix(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


class IptablesRunner:
    """The real runner: ``iptables-restore``/``iptables-save`` (iptables-nft on Debian)."""

    def __init__(self, netns: str | None = None, restore_cmd: str = "iptables-restore",
                 save_cmd: str = "iptables-save", timeout: float = 300.0):
        self.netns = netns
        self.restore_cmd = restore_cmd
        self.save_cmd = save_cmd
        self.timeout = timeout

    def restore(self, payload: str) -> None:
        cmd = _prefix(self.netns) + [self.restore_cmd, "--noflush", "-w", "5"]
        try:
            p = subprocess.run(cmd, input=payload.encode(), capture_output=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise IptablesError(f"{shlex.join(cmd)}: {e}") from e
        if p.returncode != 0:
            raise IptablesError(f"{shlex.join(cmd)} exited {p.returncode}: "
                                f"{p.stderr.decode(errors='replace').strip()[:2000]}")

    def save(self) -> str:
        cmd = _prefix(self.netns) + [self.save_cmd]
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise IptablesError(f"{shlex.join(cmd)}: {e}") from e
        if p.returncode != 0:
            raise IptablesError(f"{shlex.join(cmd)} exited {p.returncode}: "
                                f"{p.stderr.decode(errors='replace').strip()[:2000]}")
        return p.stdout.decode(errors="replace")


class ConntrackRunner:
    """The real conntrack seam: ``conntrack -D -p udp ...``; "nothing to delete" is not an error."""

    def __init__(self, netns: str | None = None, cmd: str = "conntrack"):
        self.netns = netns
        self.cmd = cmd

    def delete_udp_flows(self, *, orig_dst: str | None = None, orig_port_dst: int | None = None,
                         dst_nat: str | None = None) -> None:
        args = [self.cmd, "-D", "-p", "udp"]
        if orig_dst:
            args += ["--orig-dst", orig_dst]
        if orig_port_dst:
            args += ["--orig-port-dst", str(orig_port_dst)]
        if dst_nat:
            args += ["--dst-nat", dst_nat]
        cmd = _prefix(self.netns) + args
        try:
            p = subprocess.run(cmd, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.warning("conntrack cleanup failed: %s", e)
            return
        # Exit status 1 with "0 flow entries have been deleted" means nothing matched.
        if p.returncode not in (0, 1):
            log.warning("%s exited %d: %s", shlex.join(cmd), p.returncode, p.stderr.decode(errors="replace").strip())


# ------------------------------------------------------------------ parsing
def parse_save(text: str) -> dict[str, dict[str, list[str]]]:
    """``iptables-save`` text -> ``table -> chain -> rules`` (rules as printed, ``-A`` lines)."""
    tables: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:].strip(), {})
        elif line.startswith(":") and current is not None:
            current.setdefault(line[1:].split()[0], [])
        elif line.startswith("-A ") and current is not None:
            chain = line.split()[1]
            current.setdefault(chain, []).append(line)
    return tables


# --------------------------------------------------------------------- fakes
BUILTIN = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
}


class FakeRunner:
    """In-memory iptables for unit tests: applies restore payloads, records them.

    Set ``fail_next`` to make the next restore raise (as a real rejected payload).
    """

    def __init__(self, tables: dict[str, dict[str, list[str]]] | None = None):
        self.tables: dict[str, dict[str, list[str]]] = {
            t: {c: [] for c in chains} for t, chains in BUILTIN.items()}
        for t, chains in (tables or {}).items():
            for c, rules in chains.items():
                self.tables.setdefault(t, {})[c] = list(rules)
        self.payloads: list[str] = []
        self.saves = 0
        self.fail_next = 0

    def restore(self, payload: str) -> None:
        self.payloads.append(payload)
        if self.fail_next:
            self.fail_next -= 1
            raise IptablesError("iptables-restore: fake failure")
        staged = {t: {c: list(r) for c, r in chains.items()} for t, chains in self.tables.items()}
        table: dict[str, list[str]] | None = None
        deletes: list[tuple[str, str]] = []
        tname = ""
        for line in payload.splitlines():
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                tname = line[1:]
                table = staged.setdefault(tname, {})
            elif line == "COMMIT":
                table = None
            elif line.startswith(":"):
                assert table is not None
                table[line[1:].split()[0]] = []  # declaring a chain flushes it (--noflush too)
            elif line.startswith("-A "):
                assert table is not None
                chain = line.split()[1]
                if chain not in table:
                    raise IptablesError(f"fake: chain {chain} does not exist")
                table[chain].append(line)
            elif line.startswith("-I "):
                assert table is not None
                parts = line.split()
                chain = parts[1]
                if len(parts) > 2 and parts[2].isdigit():
                    pos, rest = int(parts[2]) - 1, " ".join(parts[3:])
                else:
                    pos, rest = 0, " ".join(parts[2:])
                table[chain].insert(pos, f"-A {chain} {rest}")
            elif line.startswith("-D "):
                assert table is not None
                chain = line.split()[1]
                rule = "-A " + line[3:]
                if rule in table.get(chain, []):
                    table[chain].remove(rule)
                else:
                    raise IptablesError(f"fake: no such rule {line}")
            elif line.startswith("-X "):
                deletes.append((tname, line.split()[1]))
            else:
                raise IptablesError(f"fake: cannot parse {line!r}")
        for t, chain in deletes:
            for rules in staged[t].values():
                if any(r.endswith(f"-j {chain}") for r in rules):
                    raise IptablesError(f"fake: chain {chain} is still referenced")
            staged[t].pop(chain, None)
        self.tables = staged

    def save(self) -> str:
        self.saves += 1
        out = []
        for t, chains in self.tables.items():
            out.append(f"*{t}")
            for c in chains:
                policy = "ACCEPT" if c in BUILTIN.get(t, ()) else "-"
                out.append(f":{c} {policy} [0:0]")
            for rules in chains.values():
                out.extend(rules)
            out.append("COMMIT")
        return "\n".join(out) + "\n"


class FakeConntrack:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def delete_udp_flows(self, *, orig_dst: str | None = None, orig_port_dst: int | None = None,
                         dst_nat: str | None = None) -> None:
        self.calls.append({k: v for k, v in (("orig_dst", orig_dst), ("orig_port_dst", orig_port_dst),
                                               ("dst_nat", dst_nat)) if v})


__all__ = ["IptablesError", "Runner", "Conntrack", "IptablesRunner", "ConntrackRunner", "FakeRunner",
           "FakeConntrack", "parse_save"]
