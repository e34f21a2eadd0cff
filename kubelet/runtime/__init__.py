"""The per-node container runtime (the containerd role): pause and container processes, logs, exit codes."""
