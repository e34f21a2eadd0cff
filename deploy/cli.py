"""`pocketkube <component>`: one entry point for every server-side process.

Each subcommand's flags and wiring live with the component; this module only
dispatches, so `pocketkube apiserver --help` shows that component's flags.
"""
from __future__ import annotations

import sys

COMPONENTS = {
    "apiserver": ("apiserver.main", "the API server (storage, REST, watch)"),
    "scheduler": ("scheduler.main", "the scheduler (places pods on nodes)"),
    "controller-manager": ("controllers.main", "controllers (endpoints)"),
    "proxy": ("proxy.main", "the service proxy (iptables)"),
    "kubelet": ("kubelet.main", "the node agent (runs the pods bound to one node)"),
    "runtime": ("kubelet.runtime.daemon", "the per-node container runtime the kubelet drives"),
    "image": ("kubelet.runtime.imagecli", "the node's image store: import, list, remove"),
    "dns": ("addons.dns.main", "cluster DNS (answers service and pod names)"),
    "netd": ("netd.main", "the pod network agent (host-gw routes or a VXLAN overlay between nodes)"),
    "install": ("deploy.install", "apt-get install the system tools `up` needs and this machine lacks"),
    "up": ("deploy.up", "start a whole cluster on this machine (as root; --nodes N, --backend host-gw|vxlan)"),
    "down": ("deploy.down", "stop it and remove everything it made (--purge: its data too)"),
    "status": ("deploy.status", "show the local cluster's processes, nodes and pods"),
    "node": ("deploy.node", "node add [NAME] / node remove NAME: grow or shrink the local cluster"),
    "supervise": ("deploy.supervise", "restart the local cluster's processes that exit (started by up)"),
}


def usage() -> str:
    lines = ["usage: pocketkube <command> [flags]", "", "commands:"]
    for name, (_, what) in COMPONENTS.items():
        lines.append(f"  {name:<20} {what}")
    lines.append("")
    lines.append("run `pocketkube <command> --help` for a command's flags")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else 2)
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMPONENTS:
        print(f"pocketkube: unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    import importlib

    importlib.import_module(COMPONENTS[cmd][0]).main(rest)


if __name__ == "__main__":
    main()
