"""The per-node container runtime (the containerd role): pause and container processes, logs, exit codes.

The kubelet uses it through two public modules only: ``client`` (the runtime
socket: sandboxes, containers, exec sessions) and ``logs`` (the CRI log files
the runtime writes and the kubelet reads, as Kubernetes does). The rest is the
daemon's own (``daemon``, ``spawn``, ``linux``, ``cgroups``, ``images``,
``journal``).
"""
